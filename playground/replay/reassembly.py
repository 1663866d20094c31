"""TCP reassembly (pure): each direction of a connection put back in order from its segments
(``Stream``), and the segments of a capture sorted into numbered connections (``Tracker``).

``Stream.segment(seq, payload, fin)`` takes the segments as they were captured and returns the
bytes that became contiguous; retransmitted bytes (any segment or part of one already delivered)
are dropped, out-of-order segments wait until the bytes before them arrive. ``finish()`` says
what is missing at the end: a :class:`Gap` where bytes never arrived (segments waiting behind a
hole, a FIN or the peer's acknowledgements beyond the bytes seen). A gap is reported, never
papered over: nothing after it is delivered. ``Tracker`` keeps both directions of a connection
in one order, the capture's, but holds a chunk back behind the peer's bytes its segment
acknowledges: a capture can write a reply before its request (``-i any`` across CPUs, two
interfaces merged, a late retransmission), and a reply decoded first pairs with nothing.

Sequence numbers are 32-bit and wrap; offsets here are 64-bit stream offsets (0 = the first
byte after the SYN, or the first segment seen when the capture has no SYN). Bounded: at most
``max_pending`` bytes wait out of order; past that the direction stops with a gap.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import NamedTuple

import attrs

MOD = 1 << 32
HALF = 1 << 31
MAX_PENDING = 16 * 1024 * 1024


@attrs.frozen
class Gap:
    """``size`` bytes of ``direction`` never arrived from stream offset ``offset``."""

    direction: str
    offset: int
    size: int
    reason: str


class Stream:
    """One direction's reassembly; see the module docstring."""

    def __init__(self, direction: str, max_pending: int = MAX_PENDING):
        self.direction = direction
        self.max_pending = max_pending
        self.isn: int | None = None  # sequence number of stream offset 0
        self.next = 0  # the next stream offset to deliver
        self.fin_offset: int | None = None
        self.acked = 0  # the highest stream offset the peer acknowledged
        self.duplicates = 0  # segments (or parts) dropped as already delivered
        self.out_of_order = 0  # segments that arrived before the bytes preceding them
        self.stopped: Gap | None = None
        self._heap: list[int] = []
        self._pending: dict[int, bytes] = {}
        self._pending_bytes = 0

    def syn(self, seq: int) -> None:
        """The sender's SYN: its first byte has sequence number ``seq + 1``."""
        if self.isn is None:
            self.isn = (seq + 1) % MOD

    def offset(self, seq: int) -> int:
        """The stream offset of sequence number ``seq``, the nearest one to ``next``."""
        rel = (seq - self.isn - self.next) % MOD
        if rel >= HALF:
            rel -= MOD
        return self.next + rel

    def ack(self, ack: int) -> None:
        """The peer acknowledged everything before ``ack``."""
        if self.isn is not None:
            self.acked = max(self.acked, self.offset(ack))

    def segment(self, seq: int, payload: bytes, fin: bool = False) -> list[bytes]:
        """The bytes ``payload`` (at sequence number ``seq``) makes contiguous, in order."""
        if self.isn is None:
            self.isn = seq % MOD
        off = self.offset(seq)
        end = off + len(payload)
        if fin and self.fin_offset is None:
            self.fin_offset = end
        if not payload or self.stopped is not None:
            return []
        if end <= self.next:
            self.duplicates += 1
            return []
        if off > self.next:
            self.out_of_order += 1
            if len(payload) > len(self._pending.get(off, b"")):
                if off not in self._pending:
                    heapq.heappush(self._heap, off)
                self._pending_bytes += len(payload) - len(self._pending.get(off, b""))
                self._pending[off] = payload
            if self._pending_bytes > self.max_pending:
                self.stopped = Gap(self.direction, self.next, self._heap[0] - self.next,
                                   f"more than {self.max_pending} bytes waited behind it")
                self._drop_pending()
            return []
        if off < self.next:
            self.duplicates += 1
        out = [payload[self.next - off:]]
        self.next = end
        heap, pending = self._heap, self._pending
        while heap and heap[0] <= self.next:
            start = heapq.heappop(heap)
            data = pending.pop(start)
            self._pending_bytes -= len(data)
            if start + len(data) > self.next:
                out.append(data[self.next - start:])
                self.next = start + len(data)
            else:
                self.duplicates += 1
        return out

    def finish(self) -> Gap | None:
        """What never arrived, once the capture is read (None: nothing is missing)."""
        if self.stopped is not None:
            return self.stopped
        if self._heap:
            gap = Gap(self.direction, self.next, self._heap[0] - self.next,
                      "segments after it arrived, these bytes did not")
            self._drop_pending()
            return gap
        if self.fin_offset is not None and self.fin_offset > self.next:
            return Gap(self.direction, self.next, self.fin_offset - self.next,
                       "the FIN came after bytes that did not")
        # the peer's ACKs count the FIN too: one more than the data is no gap
        known = self.acked - 1 if self.acked == self.next + 1 else self.acked
        if known > self.next:
            return Gap(self.direction, self.next, known - self.next,
                       "the peer acknowledged bytes the capture does not hold")
        return None

    def _drop_pending(self) -> None:
        self._heap.clear()
        self._pending.clear()
        self._pending_bytes = 0


# -- connections ---------------------------------------------------------------------------

C2S, S2C = "c2s", "s2c"  # the directions, as the proxy names them
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
MAX_CONNECTIONS = 100_000
MAX_BYTES = 1024 * 1024 * 1024


class CaptureError(Exception):
    """A capture that cannot be read, or exceeds a bound; the message says which and why."""


class Chunk(NamedTuple):
    """Bytes of one direction that became contiguous when a segment captured at ``ts`` came."""

    direction: str
    ts: float
    data: bytes


@attrs.define(slots=True, eq=False)
class Connection:
    """One TCP connection of a capture: numbered from 1 in the order they started (first SYN,
    or first segment when the capture missed the SYN); ``chunks`` hold both directions in the
    order they were captured, except that a chunk whose segment acknowledges peer bytes the
    capture wrote later follows them (a reply written before its request); ``gaps`` what never
    arrived."""

    number: int
    client: tuple  # (host, port)
    server: tuple
    started: float
    c2s: Stream = attrs.field(repr=False)
    s2c: Stream = attrs.field(repr=False)
    chunks: list = attrs.field(factory=list, repr=False)
    gaps: list = attrs.field(factory=list)
    syn: bool = False
    reset: bool = False
    problem: str | None = None  # why it cannot be replayed, found while reading the file
    # per direction, chunks captured before the peer's bytes they acknowledge: (the peer's
    # stream offset they wait for, the chunk)
    waiting: dict = attrs.field(factory=lambda: {C2S: deque(), S2C: deque()}, repr=False)

    @property
    def done(self) -> bool:
        """Both sides sent their FIN, or one a RST."""
        return self.reset or (self.c2s.fin_offset is not None and self.s2c.fin_offset is not None)

    def stream(self, direction: str) -> bytes:
        return b"".join(c.data for c in self.chunks if c.direction == direction)

    def add(self, chunk: Chunk, after: int) -> None:
        """``chunk`` in its place: behind the peer's bytes up to stream offset ``after`` (what
        its segment acknowledged), which a capture can write later than the chunk."""
        waiting = self.waiting[chunk.direction]
        peer = self.s2c if chunk.direction == C2S else self.c2s
        if waiting or after > peer.next:
            waiting.append((after, chunk))
        else:
            self.chunks.append(chunk)

    def release(self, direction: str) -> None:
        """The chunks of ``direction``'s peer that ``direction``'s bytes so far let through."""
        delivered = (self.c2s if direction == C2S else self.s2c).next
        waiting = self.waiting[S2C if direction == C2S else C2S]
        while waiting and waiting[0][0] <= delivered:
            self.chunks.append(waiting.popleft()[1])

    def flush(self) -> None:
        """Chunks still waiting (on bytes the capture never held: a gap) in capture order."""
        rest = sorted((*self.waiting[C2S], *self.waiting[S2C]), key=lambda w: w[1].ts)
        self.chunks.extend(chunk for _, chunk in rest)
        self.waiting[C2S].clear()
        self.waiting[S2C].clear()


class Tracker:
    """Segments in, connections out: ``packet(...)`` per captured TCP segment, then
    ``finish()``. A SYN on a finished connection's addresses (or with another initial sequence
    number) starts a new connection. Bounded: ``max_connections`` connections and
    ``max_bytes`` payload bytes held (delivered or waiting out of order) in all, beyond which
    :class:`CaptureError` is raised."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS, max_bytes: int = MAX_BYTES,
                 max_pending: int = MAX_PENDING):
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self.connections: list[Connection] = []
        self.held = 0
        self._by_key: dict = {}

    def packet(self, ts: float, src: tuple, dst: tuple, seq: int, ack: int, flags: int,
               payload: bytes) -> None:
        key = (src, dst) if src <= dst else (dst, src)
        conn = self._by_key.get(key)
        syn_only = flags & (SYN | ACK) == SYN
        if conn is not None and syn_only and conn.client == src and (
                conn.done or conn.c2s.isn not in (None, (seq + 1) % MOD)):
            conn = None  # the addresses are used again
        if conn is None:
            if flags & SYN:
                client, server = (src, dst) if syn_only else (dst, src)
            else:  # the capture missed the handshake: the higher port is the client's, until
                # the first bytes say otherwise
                client, server = (src, dst) if src[1] >= dst[1] else (dst, src)
            conn = self.new_connection(ts, client, server)
            self._by_key[key] = conn
        if (payload and not conn.syn and conn.client != src and not conn.chunks
                and not conn.waiting[C2S] and not conn.waiting[S2C]
                and not conn.c2s.out_of_order and not conn.s2c.out_of_order):
            self._turn(conn)  # no handshake seen: the first to send bytes is the client
        c2s = conn.client == src
        stream, other = (conn.c2s, conn.s2c) if c2s else (conn.s2c, conn.c2s)
        if flags & SYN:
            conn.syn = True
            stream.syn(seq)
            seq += 1
        if flags & ACK:
            other.ack(ack)
        if flags & RST:
            conn.reset = True
        before = stream._pending_bytes
        data = stream.segment(seq, payload, bool(flags & FIN))
        self.held += stream._pending_bytes - before
        if data:
            direction = C2S if c2s else S2C
            # the peer's bytes this segment acknowledges (its FIN's place counts as none)
            after = 0
            if flags & ACK and other.isn is not None:
                after = other.offset(ack)
                if other.fin_offset is not None:
                    after = min(after, other.fin_offset)
            for d in data:
                conn.add(Chunk(direction, ts, d), after)
                self.held += len(d)
            conn.release(direction)
        if self.held > self.max_bytes:
            raise CaptureError(f"the capture holds more than {self.max_bytes} bytes of TCP "
                               f"payload (--max-bytes)")

    @staticmethod
    def _turn(conn: Connection) -> None:
        conn.client, conn.server = conn.server, conn.client
        conn.c2s, conn.s2c = conn.s2c, conn.c2s
        conn.c2s.direction, conn.s2c.direction = C2S, S2C

    def new_connection(self, ts: float, client: tuple, server: tuple,
                       number: int | None = None) -> Connection:
        """A connection numbered ``number`` (default: the next number)."""
        if len(self.connections) >= self.max_connections:
            raise CaptureError(f"the capture holds more than {self.max_connections} TCP "
                               f"connections (--max-connections)")
        conn = Connection(number or len(self.connections) + 1, client, server, ts,
                          Stream(C2S, self.max_pending), Stream(S2C, self.max_pending))
        self.connections.append(conn)
        return conn

    def finish(self) -> list[Connection]:
        """Every connection, numbered, with what never arrived in its ``gaps``."""
        for conn in self.connections:
            conn.flush()
            conn.gaps = [g for g in (conn.c2s.finish(), conn.s2c.finish()) if g is not None]
        self._by_key.clear()
        return self.connections
