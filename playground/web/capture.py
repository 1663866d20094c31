"""The bounded store the web view reads: connections, their exchanges and their stream bytes.

Pure (no Twisted, no clock, no I/O): every call takes its time ``now``. ``Capture`` keeps, per
connection (the proxy's pair id), what the connections list shows (client, listen -> target,
protocol, state, bytes each way, start and duration, exchange and error counts), its exchanges
(in entries of one or more rows, kept as the adapter gives them, with the bytes they hold) and its
stream: the bytes of each direction in one bytearray, and a table of chunks in arrival order
(consecutive reads of one direction join one chunk), with FIN/RST marks where they happened
(the follow-stream view).

Bounds: at most ``max_connections`` connections (the oldest go first) and at most ``max_bytes``
of exchanges and stream bytes in total (the oldest connection's oldest chunks, then its oldest
exchanges go first). Nothing goes silently: ``evicted_connections`` counts the connections that
went, and a connection says which stream bytes (``stream_evicted``: offsets 0-X per direction)
and how many exchanges (``exchanges_evicted``) it lost.

Changes: every change takes the next sequence number (``seq``); ``changes(since)`` says what
changed after a number in one batch (the connections to redraw and the ids that went), or that
the caller is too far behind and must reload everything (``resync``).

Cost: the store is fed from the proxy's hot path, so what it keeps is cheap to add and
invisible to the cyclic GC: a read appends its bytes to its direction's bytearray and, when it
starts a chunk, a number to each of two arrays (``array``: its time; its offset and kind), no
object per read (a chunk's length is where the next of its direction starts); each exchanges
entry is a plain tuple in a ``TupleLog`` per connection, and the adapter's single exchanges are
rows it encodes as bytes, a segment of them at once, appended to the connection's growing entry
(``add_rows``, ``Rows``: no object per exchange). Eviction trims the front of the arrays and the
bytearrays (how many chunks go is found by bisection) and takes whole entries (``Chunk`` and
``Exchanges`` are the types handed out on read).

Batches: an adapter may queue what it is handed and give it over in batches (the web sink:
``add_reads``, a batch of reads at once; ``add_rows``). It registers how in ``before_read``:
``sync()`` calls it, and every read (``get``, ``stream``, ``changes``) and every change that
must come after the queued ones (``half_closed``, ``closed``, ``mask``; ``opened`` when it
evicts a connection) syncs first, so a reader never sees the store behind what was handed
over, and a mask reaches every byte.

Redaction: ``mask(pair, direction, start, end)`` overwrites stream bytes ``[start, end)`` with
``*`` (same length, like the pcap) whether they are stored already or arrive later.

Filters: ``Filter.parse(query)`` reads the view's filter (``proto``, ``cmd``, ``http``,
``errors``, ``slow``, ``client``; a bad value raises ``BadFilter`` naming its parameter);
``connection_matches(summary, rows)`` and ``row_matches(row)`` apply it to a connection's list
row and its exchanges' table rows; ``may_match_resp`` to what a RESP row's stored form says
(its command name, latency, error) before it is formatted.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from functools import lru_cache
from itertools import chain, groupby, islice
from operator import itemgetter
from typing import NamedTuple

import attrs

from playground.common.globs import compile_glob

C2S = "c2s"  # the values of playground.proxy.observer's directions
S2C = "s2c"
MIB = 1024 * 1024
MASK_BYTE = 0x2A  # "*": the pcap's filler
# Counted per stored exchanges entry beside the bytes it holds: Python's own (its tuple, numbers
# and data tuple), measured with tracemalloc on CPython 3.11, so that --web-memory bounds what
# the process really holds.
ENTRY_COST = 240
# Counted per stream chunk or mark beside its bytes: its 16 bytes in the chunk table's arrays,
# with their over-allocation and the evicted front not yet compacted (COMPACT), and the
# direction's bytearray's slack (at most a quarter of it: see Capture._trim).
CHUNK_COST = 64
COMPACT = 1024  # evicted chunk-table rows kept in front before the arrays are compacted
MAX_CHUNK = 64 * 1024  # a chunk grows by appending same-direction bytes up to this size
MAX_EVICTION_LOG = 4096  # ids of evicted connections remembered for changes(since)
MAX_PENDING_MASKS = 64  # ranges registered ahead of their bytes, per direction
BLOCK = 64  # items per block of a TupleLog
# A Rows entry (exchanges encoded by the adapter, one bytes per segment of rows): counted per
# entry, its object, its bytearray's and array's headers and its entry tuple; per segment, its
# bytes with the bytearray's growth slack (an eighth); per row, 8 (a segment's end in the
# array, 4 bytes with slack, counted as if each row were one).
ROWS_COST = 512
ROW_COST = 8
FEW_READS = 8  # reads add_reads stores one by one rather than grouped
MAX_ROWS = 256  # rows per Rows entry: from then on it is sealed and a new one starts

_PAIR = itemgetter(0)  # a queued read's connection
_ENTRY_FIRST = itemgetter(0)  # a stored exchanges entry's first index (its tuple's first)

OPEN = "open"
CLOSED = "closed"

# A chunk's kind, one byte in the chunk table: 0 c2s bytes, 1 s2c bytes, then the marks, one
# code per (mark, direction); the direction "" is a close nobody in particular started.
_DIRECTIONS = (C2S, S2C, "")
_MARKS = ("fin", "rst", "close", "unreached")  # unreached: the proxy's connect failed
_MARK_CODE = {(m, d): 2 + 3 * i + j for i, m in enumerate(_MARKS)
              for j, d in enumerate(_DIRECTIONS)}
_KIND = [(C2S, None), (S2C, None)] + [(d, m) for m in _MARKS for d in _DIRECTIONS]


class TupleLog:
    """A queue of plain tuples, oldest first, that the cyclic GC does not walk item by item.

    A deque of a million stored tuples costs every full collection a visit per tuple, tracked
    or not (the deque is a container the GC traverses): tens of milliseconds, during which the
    proxy forwards nothing. Here the items live in blocks, tuples of ``BLOCK`` items that the
    GC stops tracking as it does the items (a full collection visits one per block); the
    newest in a ``tail`` list until it fills, the oldest being taken in a ``head`` list (from
    ``skip`` on; a taken item's place is emptied, so it is freed at once)."""

    __slots__ = ("head", "skip", "blocks", "tail")

    def __init__(self):
        self.head: list = []
        self.skip = 0
        self.blocks: deque[tuple] = deque()
        self.tail: list = []

    def append(self, item: tuple) -> None:
        tail = self.tail
        tail.append(item)
        if len(tail) == BLOCK:
            self.seal()

    def seal(self) -> None:
        """The tail becomes a block (``append`` calls it when the tail has ``BLOCK`` items)."""
        self.blocks.append(tuple(self.tail))
        self.tail = []

    def last(self) -> tuple | None:
        """The newest item, or None."""
        if self.tail:
            return self.tail[-1]
        if self.blocks:
            return self.blocks[-1][-1]
        return self.head[-1] if self.skip < len(self.head) else None

    def popleft(self) -> tuple:
        """The oldest item, taken out (IndexError when there is none)."""
        head, skip = self.head, self.skip
        if skip == len(head):
            if self.blocks:
                head = self.head = list(self.blocks.popleft())
            else:
                head, self.head, self.tail = self.tail, self.tail, []
            skip = 0
        item = head[skip]
        head[skip] = None
        skip += 1
        if skip == len(head):
            self.head, skip = [], 0
        self.skip = skip
        return item

    def __iter__(self):
        return chain(islice(self.head, self.skip, None), chain.from_iterable(self.blocks),
                     self.tail)

    def __len__(self) -> int:
        return len(self.head) - self.skip + len(self.blocks) * BLOCK + len(self.tail)

    def __getitem__(self, i: int) -> tuple:
        """The item at position ``i`` (0: the oldest; not negative): every block holds
        ``BLOCK`` items, so this is a few index steps (``bisect`` searches it so)."""
        in_head = len(self.head) - self.skip
        if i < in_head:
            return self.head[self.skip + i]
        i -= in_head
        in_blocks = len(self.blocks) * BLOCK
        if i < in_blocks:
            return self.blocks[i // BLOCK][i % BLOCK]
        return self.tail[i - in_blocks]

    def __bool__(self) -> bool:
        return bool(self.tail or self.blocks or self.skip < len(self.head))


class Rows:
    """A connection's newest exchanges entry while it grows: segments of rows the adapter
    encoded, one bytes per segment (the web sink: a batch's exchanges of one connection,
    ``marshal``led at once), in one bytearray with an array of their ends, so a segment adds
    no Python object (nothing for the cyclic GC) and costs its bytes and 4 more. Sealed
    (``Capture._seal``) once it holds ``MAX_ROWS`` rows or more, when another entry follows,
    at close or when eviction reaches it: kept then as a plain tuple of two bytes (the
    segments, their ends), which the GC stops tracking (an array it would not).
    ``encoded_rows(data)`` reads either form."""

    __slots__ = ("first", "ts", "kind", "blob", "ends", "count", "errors", "cost")

    def __init__(self, first: int, ts: float, kind: str):
        self.first = first
        self.ts = ts
        self.kind = kind
        self.blob = bytearray()
        self.ends = array("I")
        self.count = 0  # rows, in all its segments
        self.errors = 0
        self.cost = 0  # as counted by Capture.add_rows

    def entry(self) -> Exchanges:
        return Exchanges(self.first, self.count, self.ts, self.kind, self, self.errors,
                         self.cost)


def is_encoded(data) -> bool:
    """Whether an entry's ``data`` holds encoded rows (a ``Rows``, open or sealed)."""
    return type(data) is Rows or (type(data) is tuple and len(data) == 2
                                  and type(data[1]) is bytes)


def encoded_rows(data) -> list[bytes]:
    """The segments of a ``Rows`` entry's ``data`` (open or sealed), each as the adapter
    encoded it (copies: the open entry's bytearray may grow meanwhile)."""
    if type(data) is Rows:
        blob, ends = data.blob, data.ends
    else:
        blob, ends = data[0], array("I", data[1])
    return [blob[start:end] for start, end in zip(chain((0,), ends[:-1]), ends, strict=True)]


class Exchanges(NamedTuple):
    """One or more rows of a connection's exchanges table, in order: ``count`` rows numbered
    from ``first`` (a pipelined run is one entry). ``data`` is what the adapter stored, opaque
    here (``playground.web.sink.rows`` makes the rows of it on read); ``cost``: the bytes it holds,
    as the adapter counted them, plus ``ENTRY_COST``.

    The store keeps each as a plain tuple in this order (``Connection.kept_exchanges``, a
    ``TupleLog``) and hands out this type on read (``Connection.exchanges``): the cyclic GC
    stops tracking a plain tuple that holds only numbers, strings, bytes and such tuples (an
    instance of a tuple subclass stays tracked), so the stored exchanges cost the proxy nothing
    in each full collection."""

    first: int  # 1, 2, ... within the connection
    count: int
    ts: float
    kind: str  # redis | http | push | unanswered | error | notice
    data: object
    errors: int
    cost: int  # ENTRY_COST included


class Chunk(NamedTuple):
    """Stream bytes of one direction in arrival order (consecutive reads of one direction, up to
    ``MAX_CHUNK``), or a mark (``fin``, ``rst``, ``close``) with ``data`` empty. Made on read
    from the connection's chunk table and its direction's bytearray."""

    n: int  # 1, 2, ... within the connection (the follow view asks for chunks after n)
    ts: float
    direction: str
    offset: int  # stream offset of data[0] in its direction
    data: bytes
    mark: str | None = None

    @property
    def cost(self) -> int:
        return CHUNK_COST + len(self.data)


@attrs.define(slots=True, eq=False)
class Connection:
    id: int
    started: float
    client: str
    listen: str
    target: str
    server: str = ""
    protocol: str = ""
    state: str = OPEN  # open | half-closed c2s | half-closed s2c | closed
    half_closed: tuple = ()  # directions whose sender sent FIN
    closed_by: str = ""
    how: str = ""  # fin | reset | timeout | ... (the proxy's close summary)
    reason: str = ""  # why the proxy closed it (a failed connect's error), or ""
    ended: float | None = None
    bytes_c2s: int = 0
    bytes_s2c: int = 0
    exchange_count: int = 0
    error_count: int = 0
    kept_exchanges: TupleLog = attrs.field(factory=TupleLog, init=False)  # Exchanges' tuples
    open_rows: Rows | None = attrs.field(default=None, init=False)  # the newest, growing
    exchanges_evicted: int = 0
    # the stream: each direction's bytes from stream_evicted[direction] on, and the chunk
    # table (rows from chunk_first on are kept; row i is chunk number chunk_count - (len - 1 - i))
    c2s: bytearray = attrs.field(factory=bytearray, init=False)
    s2c: bytearray = attrs.field(factory=bytearray, init=False)
    chunk_ts: array = attrs.field(factory=lambda: array("d"), init=False)
    chunk_info: array = attrs.field(factory=lambda: array("q"), init=False)  # offset << 4 | kind
    chunk_first: int = 0
    chunk_count: int = 0
    stream_evicted: dict = attrs.field(factory=lambda: {C2S: 0, S2C: 0})  # bytes 0-X gone
    pending_masks: dict = attrs.field(factory=dict)  # direction -> [(start, end)] not yet here
    cost: int = 0
    seq: int = 0

    @property
    def exchanges(self) -> list[Exchanges]:
        """Its stored exchanges entries, oldest first (the growing ``Rows`` last)."""
        out = list(map(Exchanges._make, self.kept_exchanges))
        if self.open_rows is not None:
            out.append(self.open_rows.entry())
        return out

    def exchanges_from(self, after: int, limit: int) -> list[Exchanges]:
        """At most ``limit`` of its stored exchanges entries, oldest first, from the one that
        holds the row after index ``after`` on (the first kept when it is older): found by
        bisection, so reading a connection window by window costs each window alone."""
        kept = self.kept_exchanges
        n = len(kept)
        start = max(bisect_right(kept, after, hi=n, key=_ENTRY_FIRST) - 1, 0)
        if start < n and kept[start][0] + kept[start][1] - 1 <= after:  # it ends at ``after``
            start += 1
        out = [Exchanges._make(kept[i]) for i in range(start, min(n, start + limit))]
        if len(out) < limit and self.open_rows is not None:
            rows = self.open_rows.entry()
            if rows.first + rows.count - 1 > after:
                out.append(rows)
        return out

    @property
    def chunks(self) -> list[Chunk]:
        """Its stored stream chunks and marks, in arrival order."""
        return self.chunks_after(0)

    def chunks_after(self, after: int = 0, limit: int = 0) -> list[Chunk]:
        """Its stored chunks numbered after ``after``, at most ``limit`` (0: all)."""
        info = self.chunk_info
        end = len(info)
        first_n = self.chunk_count - end + 1  # the number of row 0
        i = max(self.chunk_first, after - first_n + 1)
        stop = min(end, i + limit) if limit else end
        out = []
        for row in range(i, stop):
            key = info[row]
            direction, mark = _KIND[key & 15]
            at = key >> 4
            if mark is None:
                lo = at - self.stream_evicted[direction]
                data = bytes((self.c2s if direction == C2S else self.s2c)[
                    lo:lo + self.chunk_size(row)])
            else:
                data = b""
            out.append(Chunk(first_n + row, self.chunk_ts[row], direction, at, data, mark))
        return out

    def chunk_size(self, row: int) -> int:
        """The bytes of chunk-table row ``row``: to where the next chunk of its direction
        starts, or to the stream's end (0 for a mark). The next is a few rows on at most: one
        direction's consecutive reads join one chunk up to ``MAX_CHUNK``, so only marks and
        chunks that reached it come between."""
        info = self.chunk_info
        key = info[row]
        code = key & 15
        if code > 1:
            return 0
        for j in range(row + 1, len(info)):
            if info[j] & 15 == code:
                return (info[j] >> 4) - (key >> 4)
        direction, stored = (C2S, self.c2s) if code == 0 else (S2C, self.s2c)
        return self.stream_evicted[direction] + len(stored) - (key >> 4)

    @property
    def chunk_rows(self) -> int:
        """How many chunks and marks it stores."""
        return len(self.chunk_info) - self.chunk_first

    def duration(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started

    def summary(self, now: float) -> dict:
        """The connections list's row (JSON-ready)."""
        return {
            "id": self.id, "client": self.client, "listen": self.listen,
            "target": self.target, "server": self.server, "protocol": self.protocol,
            "state": self.state, "closed_by": self.closed_by, "how": self.how,
            "reason": self.reason,
            "started": self.started, "duration": round(self.duration(now), 6),
            "bytes_c2s": self.bytes_c2s, "bytes_s2c": self.bytes_s2c,
            "exchanges": self.exchange_count, "errors": self.error_count,
            "exchanges_evicted": self.exchanges_evicted,
            "stream_evicted": dict(self.stream_evicted), "seq": self.seq,
        }


class StreamEvicted(Exception):
    """A connection read window by window (``Capture.stream_windows``,
    ``exchange_windows``) lost what it had not read yet: the connection, or its chunks or
    exchanges after the last window, were evicted."""


class Capture:
    """See the module docstring."""

    def __init__(self, max_connections: int = 1000, max_bytes: int = 64 * MIB):
        if max_connections < 1 or max_bytes < 0:
            raise ValueError("max_connections must be >= 1 and max_bytes >= 0")
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        self.connections: OrderedDict[int, Connection] = OrderedDict()  # oldest first
        self.seq = 0
        self.bytes = 0  # cost of what is stored, against max_bytes
        self.evicted_connections = 0
        self.evicted_bytes = 0  # stream bytes and exchange text evicted, in total
        self.dropped_records = 0  # exchanges for connections no longer (or never) here
        self._evictions: deque = deque(maxlen=MAX_EVICTION_LOG)  # (seq, id)
        self._holding: OrderedDict[int, None] = OrderedDict()  # ids with a cost, oldest first
        # callables that hand over what an adapter queued (the web sink's batch): every read
        # (get, stream, changes) and every change that must come after it calls them first
        self.before_read: list = []

    def sync(self) -> None:
        """Take in what the adapters queued (``before_read``): the readers call it first."""
        for hand_over in self.before_read:
            hand_over()

    # -- changes ---------------------------------------------------------------------------
    def _touch(self, c: Connection) -> None:
        self.seq += 1
        c.seq = self.seq

    def changes(self, since: int, now: float, limit: int = 0) -> dict:
        """What changed after ``since``: ``{"seq", "resync", "connections": [rows], "evicted":
        [ids], "evicted_total"}``. ``resync``: ``since`` is older than what the eviction log
        remembers (or in the future): the rows are then every connection, and the caller drops
        what it had. ``limit`` > 0: at most that many rows, the oldest changes first; the
        caller asks again from the ``seq`` returned (it is then the seq of the last row sent)."""
        self.sync()
        resync = since <= 0 or since > self.seq or (
            len(self._evictions) == self._evictions.maxlen and self._evictions[0][0] > since)
        if resync:
            rows = list(self.connections.values())
            evicted = []
        else:
            rows = [c for c in self.connections.values() if c.seq > since]
            evicted = [cid for s, cid in self._evictions if s > since]
        rows.sort(key=lambda c: c.seq)
        seq = self.seq
        if limit and len(rows) > limit:
            rows = rows[:limit]
            seq = rows[-1].seq
            evicted = [cid for s, cid in self._evictions if since < s <= seq] if not resync else []
        return {"seq": seq, "resync": resync, "connections": [c.summary(now) for c in rows],
                "evicted": evicted, "evicted_total": self.evicted_connections}

    # -- what the proxy saw ----------------------------------------------------------------
    def opened(self, pair: int, now: float, client: str, listen: str, target: str,
               server: str = "") -> Connection:
        if len(self.connections) >= self.max_connections:
            self.sync()  # what is queued for the connection about to go is counted as it goes
        c = Connection(pair, now, client, listen, target, server)
        self.connections[pair] = c
        self._touch(c)
        while len(self.connections) > self.max_connections:
            self._evict_connection(next(iter(self.connections)))
        return c

    def detected(self, pair: int, protocol: str) -> None:
        c = self.connections.get(pair)
        if c is not None and c.protocol != protocol:
            c.protocol = protocol
            self._touch(c)

    def data(self, pair: int, direction: str, data: bytes, now: float) -> None:
        """Bytes the proxy forwarded: appended to their direction's bytearray; the last chunk
        grows while the same direction goes on (up to ``MAX_CHUNK``), else a chunk-table row is
        added. (The web sink hands reads over in batches: ``add_reads``.)"""
        c = self.connections.get(pair)
        if c is None or not data:
            return
        cost = self._append(c, direction, data, now)
        self._charge(c, cost)

    def _append(self, c: Connection, direction: str, data: bytes, now: float) -> int:
        """``data`` stored (masked where a range registered ahead of it says): its cost."""
        n = len(data)
        if direction == C2S:
            stored = c.c2s
            c.bytes_c2s += n
            code = 0
        else:
            stored = c.s2c
            c.bytes_s2c += n
            code = 1
        start_in = len(stored)
        stored += data
        offset = c.stream_evicted[direction] + start_in
        info = c.chunk_info
        last = info[-1] if len(info) > c.chunk_first else -1
        if last & 15 == code and offset + n - (last >> 4) <= MAX_CHUNK:  # the last one grows
            cost = n
        else:
            c.chunk_count += 1
            info.append(offset << 4 | code)
            c.chunk_ts.append(now)
            cost = CHUNK_COST + n
        if c.pending_masks:
            self._mask_arrived(c, direction, offset, offset + n, stored, start_in)
        return cost

    def add_reads(self, reads: list) -> None:
        """Reads the proxy forwarded, ``(pair, direction, data, now)`` in arrival order, as
        ``data`` one by one would store them (the same chunks, costs and bounds; one seq per
        connection). The hot path of the byte side, done per batch: the reads sorted by
        connection (stable: each keeps its order), then per connection a tight loop of
        appends, its counts and cost updated once. ``reads`` is consumed (sorted, emptied)."""
        if len(reads) < FEW_READS:  # a few (a short connection's): one by one costs less
            for read in reads:
                self.data(*read)
            reads.clear()
            return
        reads.sort(key=_PAIR)
        connections = self.connections
        for pair, group in groupby(reads, _PAIR):
            c = connections.get(pair)
            if c is None:
                continue
            if c.pending_masks:  # a mask waits for some of these bytes: one by one, exactly
                cost = 0
                for _, direction, data, now in group:
                    if data:
                        cost += self._append(c, direction, data, now)
            else:
                cost = self._append_many(c, group)
            if not cost:
                continue
            self._charge(c, cost)
        reads.clear()

    @staticmethod
    def _append_many(c: Connection, group) -> int:
        """``_append`` for each read of ``group`` (no mask waiting), in one loop: the cost."""
        c2s, s2c = c.c2s, c.s2c
        had_c2s, had_s2c = len(c2s), len(s2c)
        at_c2s = c.stream_evicted[C2S] + had_c2s  # the stream offset the next byte gets
        at_s2c = c.stream_evicted[S2C] + had_s2c
        info = c.chunk_info
        new_chunk, new_ts = info.append, c.chunk_ts.append
        last = info[-1] if len(info) > c.chunk_first else -1
        last_code, last_start = last & 15, last >> 4
        chunks = 0
        for _, direction, data, now in group:
            n = len(data)
            if not n:
                continue
            if direction == C2S:
                c2s += data
                at = at_c2s
                at_c2s += n
                if last_code == 0 and at_c2s - last_start <= MAX_CHUNK:
                    continue  # the last one grows
                new_chunk(at << 4)
                last_code = 0
            else:
                s2c += data
                at = at_s2c
                at_s2c += n
                if last_code == 1 and at_s2c - last_start <= MAX_CHUNK:
                    continue
                new_chunk(at << 4 | 1)
                last_code = 1
            new_ts(now)
            last_start = at
            chunks += 1
        sent_c2s, sent_s2c = len(c2s) - had_c2s, len(s2c) - had_s2c
        c.bytes_c2s += sent_c2s
        c.bytes_s2c += sent_s2c
        c.chunk_count += chunks
        return CHUNK_COST * chunks + sent_c2s + sent_s2c

    @staticmethod
    def _mask_arrived(c: Connection, direction: str, offset: int, end: int, stored: bytearray,
                      start_in: int) -> None:
        """Mask the ranges registered ahead of bytes ``[offset, end)`` that just arrived (they
        are ``stored[start_in:]``)."""
        pending = c.pending_masks.get(direction)
        if not pending:
            return
        left = []
        for s, e in pending:
            if s < end and e > offset:
                _overwrite(stored, max(s, offset) - offset + start_in,
                           min(e, end) - offset + start_in)
            if e > end:
                left.append((s, e))
        if left:
            c.pending_masks[direction] = left
        else:
            del c.pending_masks[direction]  # none left: the hot path skips this call again

    def mask(self, pair: int, direction: str, start: int, end: int) -> int:
        """Overwrite stream bytes ``[start, end)`` of ``direction`` with ``*``, now for those
        stored and on arrival for those still to come. Returns 0 (nothing stored stays in
        clear; bytes already evicted are gone)."""
        self.sync()  # what was queued comes first: the mask reaches it
        c = self.connections.get(pair)
        if c is None or end <= start or direction not in (C2S, S2C):
            return 0
        stored = c.c2s if direction == C2S else c.s2c
        base = c.stream_evicted[direction]
        received = base + len(stored)
        _overwrite(stored, max(start, base) - base, min(end, received) - base)
        if end > received:
            pending = c.pending_masks.setdefault(direction, [])
            if len(pending) >= MAX_PENDING_MASKS:  # merge: mask more rather than less
                s0 = min(s for s, _ in pending)
                e0 = max(e for _, e in pending)
                pending[:] = [(min(s0, start), max(e0, end))]
            else:
                pending.append((max(start, received), end))
        self._touch(c)
        return 0

    def half_closed(self, pair: int, direction: str, now: float) -> None:
        self.sync()
        c = self.connections.get(pair)
        if c is None:
            return
        if direction not in c.half_closed:
            c.half_closed = c.half_closed + (direction,)
        if c.state != CLOSED:
            c.state = "half-closed " + ", ".join(c.half_closed)
        self._mark(c, direction, "fin", now)
        self._touch(c)
        self._bound()

    def closed(self, pair: int, now: float, closed_by: str = "", how: str = "",
               bytes_c2s: int | None = None, bytes_s2c: int | None = None,
               reason: str = "") -> None:
        self.sync()
        c = self.connections.get(pair)
        if c is None:
            return
        c.state = CLOSED
        c.closed_by = closed_by
        c.how = how
        c.reason = reason
        c.ended = now
        if bytes_c2s is not None:
            c.bytes_c2s = max(c.bytes_c2s, bytes_c2s)
        if bytes_s2c is not None:
            c.bytes_s2c = max(c.bytes_s2c, bytes_s2c)
        c.pending_masks.clear()
        if c.open_rows is not None:
            self._seal(c)
        direction = C2S if closed_by == "client" else S2C if closed_by == "server" else ""
        mark = "rst" if how == "reset" else "unreached" if how == "connect-failed" else "close"
        self._mark(c, direction, mark, now)
        self._touch(c)
        self._bound()

    def add_exchanges(self, pair: int, now: float, kind: str, data, count: int = 1,
                      errors: int = 0, cost: int = 0) -> None:
        """``count`` exchanges (rows) of ``kind`` the adapter keeps as ``data`` (opaque here),
        ``errors`` of them errors, holding ``cost`` bytes."""
        c = self.connections.get(pair)
        if c is None:
            self.dropped_records += count
            return
        if c.open_rows is not None:
            self._seal(c)
        cost += ENTRY_COST
        first = c.exchange_count + 1
        c.kept_exchanges.append((first, count, now, kind, data, errors, cost))  # an Exchanges
        c.exchange_count = first - 1 + count
        if errors:
            c.error_count += errors
        self._charge(c, cost)

    def add_rows(self, pair: int, now: float, kind: str, segment: bytes, count: int = 1,
                 errors: int = 0) -> None:
        """``count`` exchanges (rows) of ``kind`` the adapter encoded as one ``segment``,
        ``errors`` of them errors: appended to the connection's growing ``Rows`` entry (the
        hot path of unpipelined traffic: no object kept per exchange). Their cost: the
        segment's bytes with the slack, ``ROW_COST`` a row, and ``ROWS_COST`` for each new
        entry."""
        c = self.connections.get(pair)
        if c is None:
            self.dropped_records += count
            return
        rows = c.open_rows
        n = len(segment)
        cost = n + (n >> 3) + ROW_COST * count
        if rows is None or rows.kind != kind:
            if rows is not None:
                self._seal(c)
            rows = c.open_rows = Rows(c.exchange_count + 1, now, kind)
            cost += ROWS_COST + ENTRY_COST
        blob = rows.blob
        blob += segment
        rows.ends.append(len(blob))
        rows.count += count
        rows.cost += cost
        c.exchange_count += count
        if errors:
            rows.errors += errors
            c.error_count += errors
        if rows.count >= MAX_ROWS:
            self._seal(c)
        self._charge(c, cost)

    @staticmethod
    def _seal(c: Connection) -> None:
        """The connection's growing ``Rows`` becomes a stored entry like the others, its
        data a plain tuple of two bytes (its cost stays as counted)."""
        rows = c.open_rows
        c.open_rows = None
        c.kept_exchanges.append((rows.first, rows.count, rows.ts, rows.kind,
                                 (bytes(rows.blob), rows.ends.tobytes()), rows.errors,
                                 rows.cost))

    def stream_end(self, pair: int, direction: str) -> int:
        """The stream offset the stored bytes of ``direction`` reach (0: no such connection)."""
        c = self.connections.get(pair)
        if c is None:
            return 0
        return c.stream_evicted[direction] + len(c.c2s if direction == C2S else c.s2c)

    def stream_from(self, pair: int, direction: str, offset: int) -> tuple[int, bytes]:
        """The stored bytes of ``direction`` from stream offset ``offset`` on (or from the
        first one kept, when it was evicted): ``(their offset, bytes)``."""
        c = self.connections.get(pair)
        if c is None:
            return offset, b""
        base = c.stream_evicted[direction]
        start = max(offset, base)
        return start, bytes((c.c2s if direction == C2S else c.s2c)[start - base:])

    # -- what the API reads ----------------------------------------------------------------
    def get(self, pair: int) -> Connection | None:
        self.sync()
        return self.connections.get(pair)

    def stream(self, pair: int, after: int = 0, limit: int = 0) -> list[Chunk]:
        """The connection's chunks numbered after ``after`` (at most ``limit``, 0 = all)."""
        self.sync()
        c = self.connections.get(pair)
        return [] if c is None else c.chunks_after(after, limit)

    def exchange_windows(self, pair: int, size: int = 16) -> Iterator[list[Exchanges]]:
        """The connection's exchanges entries as they are now, in windows of at most ``size``
        entries, each read from the store when asked for (a download's pieces: nothing is
        taken ahead, so a paused download keeps no evicted entry alive), up to the entry of the
        newest row of now (a growing entry may hold later rows by then: the caller keeps the
        rows up to ``exchange_count`` of now, ``export.jsonl_pieces`` does). It raises
        ``StreamEvicted`` when the connection, or entries it has not given yet, were evicted
        meanwhile. What "now" is: this call (the windows are read later, when asked for)."""
        self.sync()
        c = self.connections.get(pair)
        if c is None:
            return iter(())

        return self._windows(pair, c, c.exchange_count,
                             lambda after: c.exchanges_from(after, size),
                             lambda entry: (entry.first, entry.first + entry.count - 1))

    def stream_windows(self, pair: int, size: int = 256) -> Iterator[list[Chunk]]:
        """The connection's stream as it is now, in windows of at most ``size`` chunks, each
        read from the store when asked for (a download's pieces: a long stream is not copied
        at once): the chunks up to the newest of now, their bytes up to each direction's end of
        now (the newest chunk of a direction grows with later reads). It raises
        ``StreamEvicted`` when the connection, or chunks it has not given yet, were evicted
        meanwhile (what it gave would otherwise look like the whole stream). What "now" is:
        this call (the windows are read later, when asked for)."""
        self.sync()
        c = self.connections.get(pair)
        if c is None:
            return iter(())
        ends = {d: c.stream_evicted[d] + len(c.c2s if d == C2S else c.s2c) for d in (C2S, S2C)}
        last = c.chunk_count

        def window_after(after: int) -> list[Chunk]:
            window = [ch for ch in c.chunks_after(after, size) if ch.n <= last]
            for i, ch in enumerate(window):  # a direction's newest chunk may have grown since
                if ch.mark is None and ch.offset + len(ch.data) > ends[ch.direction]:
                    window[i] = ch._replace(data=ch.data[:max(ends[ch.direction] - ch.offset, 0)])
            return window

        return self._windows(pair, c, last, window_after, lambda ch: (ch.n, ch.n))

    def _windows(self, pair: int, c: Connection, last: int, window_after, numbers) -> Iterator:
        """``window_after(after)``'s windows of ``c``'s items after number ``after``, up to
        ``last``, each read when asked for; ``numbers(item)``: the first and last numbers it
        holds. It raises ``StreamEvicted`` when ``c``, or items not given yet, were evicted."""
        after = 0
        while after < last:
            self.sync()
            if self.connections.get(pair) is not c:
                raise StreamEvicted(pair)
            window = window_after(after)
            if not window and not after:  # nothing of it kept (evicted before)
                return
            if not window or (after and numbers(window[0])[0] > after + 1):
                raise StreamEvicted(pair)
            after = numbers(window[-1])[1]
            yield window

    # -- bounds ----------------------------------------------------------------------------
    def _mark(self, c: Connection, direction: str, mark: str, now: float) -> None:
        c.chunk_count += 1
        offset = c.bytes_c2s if direction == C2S else c.bytes_s2c if direction == S2C else 0
        c.chunk_info.append(offset << 4 | _MARK_CODE[mark, direction])
        c.chunk_ts.append(now)
        self._add_cost(c, CHUNK_COST)

    def _add_cost(self, c: Connection, cost: int) -> None:
        if c.cost == 0:
            self._holding[c.id] = None
        c.cost += cost
        self.bytes += cost

    def _charge(self, c: Connection, cost: int) -> None:
        """What a new record or read of ``c`` costs counted, the change numbered, and the
        bound kept."""
        self._add_cost(c, cost)
        self.seq = c.seq = self.seq + 1
        if self.bytes > self.max_bytes:
            self._bound()

    def _bound(self) -> None:
        """Evict the oldest stored things until the total is within ``max_bytes`` (from 1 MiB
        on, less a 1/64 slack: a full capture then evicts once per so many records, in one
        tight loop, not a chunk on each call)."""
        goal = self.max_bytes - (self.max_bytes >> 6 if self.max_bytes >= MIB else 0)
        holding = self._holding
        evicted = 0
        while self.bytes > goal and holding:
            pair = next(iter(holding))
            c = self.connections[pair]
            over = self.bytes - goal
            freed = 0
            exchanges = c.kept_exchanges
            i, end = c.chunk_first, len(c.chunk_info)
            if i < end:  # its oldest chunks: as few as free ``over`` (or all of them)
                i, freed, trimmed = self._oldest_chunks(c, over)
                evicted += trimmed[0] + trimmed[1]
                self._trim(c, i, trimmed)
            while i == end and freed < over:
                if not exchanges:
                    if c.open_rows is None:
                        break
                    self._seal(c)
                _, count, _, _, _, _, cost = exchanges.popleft()  # an Exchanges
                c.exchanges_evicted += count
                evicted += cost - ENTRY_COST
                freed += cost
            c.cost -= freed
            self.bytes -= freed
            if c.cost <= 0 or not (i < end or exchanges or c.open_rows is not None):
                del holding[pair]
            self._touch(c)
        self.evicted_bytes += evicted

    @staticmethod
    def _oldest_chunks(c: Connection, over: int) -> tuple[int, int, list[int]]:
        """The fewest of ``c``'s oldest chunk-table rows whose eviction frees ``over`` (all of
        them if that is not enough): ``(the first row kept, the cost freed, [c2s, s2c bytes
        freed])``. Found by bisection, not row by row: a direction's chunks are contiguous in
        its stream, so the bytes of its chunks before row ``k`` are where its next chunk from
        ``k`` on starts (or its stream's end) less where its first one starts."""
        info = c.chunk_info
        first, end = c.chunk_first, len(info)
        ends = (c.stream_evicted[C2S] + len(c.c2s), c.stream_evicted[S2C] + len(c.s2c))

        def start_from(row: int, code: int) -> int:
            for j in range(row, end):
                key = info[j]
                if key & 15 == code:
                    return key >> 4
            return ends[code]

        base = (start_from(first, 0), start_from(first, 1))

        def freed(k: int) -> tuple[int, list[int]]:
            trimmed = [start_from(k, 0) - base[0], start_from(k, 1) - base[1]]
            return CHUNK_COST * (k - first) + trimmed[0] + trimmed[1], trimmed

        lo, hi = first + 1, end  # the answer is in [lo, hi]: hi frees everything there is
        while lo < hi:
            mid = (lo + hi) // 2
            if freed(mid)[0] >= over:
                hi = mid
            else:
                lo = mid + 1
        cost, trimmed = freed(lo)
        return lo, cost, trimmed

    @staticmethod
    def _trim(c: Connection, first: int, trimmed: list[int]) -> None:
        """Chunk-table rows before ``first`` are evicted, and ``trimmed`` bytes of c2s and s2c:
        the bytearrays lose their front (a copy when more than a quarter of one would be
        slack, so what it holds stays within what is counted), the arrays theirs once
        ``COMPACT`` rows and a quarter of the table wait there (at once when none is left)."""
        for k, direction in ((0, C2S), (1, S2C)):
            if trimmed[k]:
                stored = c.c2s if k == 0 else c.s2c
                del stored[:trimmed[k]]
                c.stream_evicted[direction] += trimmed[k]
                if sys.getsizeof(stored) - len(stored) > (len(stored) >> 2) + 64:
                    if k == 0:
                        c.c2s = bytearray(stored)
                    else:
                        c.s2c = bytearray(stored)
        end = len(c.chunk_info)
        if first == end or (first >= COMPACT and 4 * first >= end):
            for table in (c.chunk_ts, c.chunk_info):
                del table[:first]
            first = 0
        c.chunk_first = first

    def _evict_connection(self, pair: int) -> None:
        c = self.connections.pop(pair)
        self._holding.pop(pair, None)
        self.bytes -= c.cost
        self.evicted_bytes += c.cost
        self.evicted_connections += 1
        self.seq += 1
        self._evictions.append((self.seq, pair))


PROTOCOLS = ("resp", "http", "text", "hex")  # playground.decode.detect's names


MAX_NAMES = 256  # command names a filter remembers whether its cmd glob matches


def _compiled(pattern: str):
    return compile_glob(pattern) if pattern else None


def _cmd_answers(shown: Filter):
    """Whether a command name matches ``shown.cmd``, remembered by name (a scan asks it of every
    RESP row it peeks at, and again of the formatted row of one that may match, of a few
    distinct names): a third of the glob's time."""
    if not shown.cmd:
        return None
    match = compile_glob(shown.cmd)
    return lru_cache(maxsize=MAX_NAMES)(lambda name: match(name) is not None)


class BadFilter(ValueError):
    """A filter parameter with a bad value; ``name`` is the parameter."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name


@attrs.frozen
class Filter:
    """What the web view shows: connections of ``proto`` from a ``client`` (glob) that hold an
    exchange matching ``cmd`` (RESP command name glob, case-insensitive), ``http`` (methods,
    comma-separated, and a path glob, either may go, like ``--http-filter``), ``errors`` (an error reply or HTTP status >= 400) and
    ``slow`` (latency above, seconds). Unset parts match everything."""

    proto: str = ""
    cmd: str = ""
    http_method: str = ""
    http_path: str = ""
    errors: bool = False
    slow: float | None = None
    client: str = ""
    # the globs compiled once, when the filter is made (None: not set)
    _name_matches: Callable[[str], bool] | None = attrs.field(
        init=False, eq=False, repr=False, default=attrs.Factory(_cmd_answers, takes_self=True))
    _path_glob: Callable[[str], object] | None = attrs.field(
        init=False, eq=False, repr=False,
        default=attrs.Factory(lambda f: _compiled(f.http_path), takes_self=True))
    _client_glob: Callable[[str], object] | None = attrs.field(
        init=False, eq=False, repr=False,
        default=attrs.Factory(lambda f: _compiled(f.client), takes_self=True))

    FIELDS = ("proto", "cmd", "http", "errors", "slow", "client")

    @classmethod
    def parse(cls, query: dict[str, str]) -> Filter:
        """From the query's values (``slow`` in milliseconds); an empty value is unset."""
        kw: dict = {}
        proto = query.get("proto", "").strip().lower()
        if proto and proto not in PROTOCOLS:
            raise BadFilter("proto", f"one of {'|'.join(PROTOCOLS)}, got {proto[:40]!r}")
        kw["proto"] = proto
        kw["cmd"] = query.get("cmd", "").strip().upper()
        http = query.get("http", "").split()
        if len(http) > 2:
            raise BadFilter("http", "expected [METHOD[,METHOD...]] [PATH-GLOB]")
        if len(http) == 1 and http[0].startswith("/"):  # a path alone: any method
            http = ["*", http[0]]
        if http:
            kw["http_method"] = http[0].upper()
            kw["http_path"] = http[1] if len(http) == 2 else "*"
        errors = query.get("errors", "").strip()
        if errors not in ("", "0", "1"):
            raise BadFilter("errors", f"expected 0 or 1, got {errors[:40]!r}")
        kw["errors"] = errors == "1"
        slow = query.get("slow", "").strip()
        if slow:
            try:
                ms = float(slow)
            except ValueError:
                ms = -1.0
            if not 0 <= ms < 1e9:
                raise BadFilter("slow", f"expected milliseconds >= 0, got {slow[:40]!r}")
            kw["slow"] = ms / 1000
        kw["client"] = query.get("client", "").strip()
        return cls(**kw)

    @property
    def on_exchanges(self) -> bool:
        """Whether it looks at exchanges (else a connection matches by itself)."""
        return bool(self.cmd or self.http_method or self.errors or self.slow is not None)

    @property
    def active(self) -> bool:
        return bool(self.proto or self.client or self.on_exchanges)

    def cmd_matches(self, name: str) -> bool:
        """Whether a RESP command name (upper-cased) matches ``cmd`` (unset: every name)."""
        return not self.cmd or self._name_matches(name)

    def row_matches(self, row: dict) -> bool:
        """Whether an exchanges table row (``playground.web.sink.rows``) matches."""
        if self.errors and not row.get("error"):
            return False
        if self.slow is not None:
            latency = row.get("latency")
            if latency is None or latency <= self.slow:
                return False
        if self.cmd:
            if row.get("kind") != "redis":
                return False
            name = row.get("request", "").split(" ", 1)[0].upper()
            if not self._name_matches(name):
                return False
        if self.http_method:
            if row.get("kind") != "http":
                return False
            method, _, target = row.get("request", "").partition(" ")
            if self.http_method != "*" and method.upper() not in self.http_method.split(","):
                return False
            if self._path_glob(target.split("?", 1)[0]) is None:
                return False
        return True

    def may_match_resp(self, name: str | None, latency: float | None, error: bool) -> bool:
        """Whether a RESP exchange's row may match, told by what its stored form says of it
        without formatting (``playground.web.sink.peek``): its command ``name`` as
        ``row_matches`` reads it (None: unknown, only the formatted row says), its ``latency``
        and whether it is an ``error``. False: its row does not match; True: ``row_matches``
        on its formatted row decides."""
        if self.http_method or (self.errors and not error):
            return False
        if self.slow is not None and (latency is None or latency <= self.slow):
            return False
        return not (self.cmd and name is not None and not self._name_matches(name))

    def by_itself(self, summary: dict) -> bool:
        """Whether a connection's list row matches ``proto`` and ``client``."""
        if self.proto and summary.get("protocol") != self.proto:
            return False
        return not self.client or self._client_glob(summary.get("client", "")) is not None

    def connection_matches(self, summary: dict, rows=()) -> bool:
        """Whether a connection (its list row) matches: by itself for ``proto`` and
        ``client``, and by one of its exchange ``rows`` (any iterable) for the rest."""
        if not self.by_itself(summary):
            return False
        if self.on_exchanges:
            return any(self.row_matches(row) for row in rows)
        return True


def _overwrite(buf: bytearray, start: int, end: int) -> None:
    if end > start:
        buf[start:end] = bytes([MASK_BYTE]) * (end - start)
