"""The keyspace: keys to values with expiry in integer milliseconds, SCAN order and WATCH."""

from __future__ import annotations

import bisect
import heapq
from typing import TYPE_CHECKING, Any

from playground.examples.resp.replies import WRONGTYPE

if TYPE_CHECKING:
    from playground.codec.values import Error
    from playground.examples.resp.session import Session


def milliseconds(now: float) -> int:
    """The engine's clock (seconds) as the keyspace counts it."""
    return int(now * 1000)


class Keyspace:
    """Keys to values (each data-type module's ``VALUE_TYPE``: ``bytes``, ``deque``, ``dict``,
    ``MemberSet``, ``SortedSet``) with expiry.

    Deadlines are integer milliseconds; a key is expired once ``now_ms > deadline`` (as Redis).
    A min-heap of deadlines makes the periodic sweep cost proportional to what expires.
    SCAN order is key creation order (a sequence number per key), so a key present for a whole
    iteration is returned exactly once whatever else is added or removed meanwhile.
    """

    def __init__(self):
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, int] = {}
        self.expired = 0  # keys removed because their time was up
        self._heap: list[tuple[int, bytes]] = []
        self._seq = 0
        self._seq_of: dict[bytes, int] = {}
        self._scan_seqs: list[int] = []
        self._scan_keys: list[bytes] = []
        self._watchers: dict[bytes, set[Session]] = {}

    # -- lookups and writes
    def expire_if_needed(self, key: bytes, now_ms: int) -> bool:
        deadline = self.expires.get(key)
        if deadline is not None and now_ms > deadline:
            self.expired += 1
            self.delete(key)
            return True
        return False

    def get(self, key: bytes, now_ms: int):
        if key in self.expires:
            self.expire_if_needed(key, now_ms)
        return self.data.get(key)

    def get_typed(self, key: bytes, now_ms: int, kind: type,
                  create: bool = False) -> tuple[Any, Error | None]:
        """The ``kind`` value at ``key`` as ``(value, None)``; ``(None, None)`` when the key is
        missing (unless ``create``: then a new empty ``kind()`` is stored and returned), and
        ``(None, WRONGTYPE)`` when it holds another type."""
        value = self.get(key, now_ms)
        if value is None:
            if not create:
                return None, None
            value = kind()
            self.put(key, value)
            return value, None
        if isinstance(value, kind):
            return value, None
        return None, WRONGTYPE

    def contains(self, key: bytes, now_ms: int) -> bool:
        return self.get(key, now_ms) is not None

    def put(self, key: bytes, value, keep_ttl: bool = False) -> None:
        if key not in self.data:
            self._seq += 1
            self._seq_of[key] = self._seq
            self._scan_seqs.append(self._seq)
            self._scan_keys.append(key)
        elif not keep_ttl:
            self.expires.pop(key, None)
        self.data[key] = value
        self.touch(key)

    def delete(self, key: bytes) -> bool:
        if key not in self.data:
            return False
        del self.data[key]
        self.expires.pop(key, None)
        del self._seq_of[key]
        if len(self._scan_seqs) > 64 and len(self._scan_seqs) > 2 * len(self._seq_of):
            self._compact_scan_order()
        self.touch(key)
        return True

    def shrunk(self, key: bytes, value, changed: bool = True) -> None:
        """After removing from the collection ``value`` stored at ``key``: the key goes once
        ``value`` is empty (as Redis), else it is marked modified when ``changed``."""
        if not value:
            self.delete(key)
        elif changed:
            self.touch(key)

    def touch(self, key: bytes) -> None:
        """Mark ``key`` modified: transactions WATCHing it will fail."""
        watchers = self._watchers.get(key)
        if watchers:
            for session in watchers:
                session.dirty = True

    def flush(self) -> None:
        for watchers in self._watchers.values():
            for session in watchers:
                session.dirty = True
        self.data.clear()
        self.expires.clear()
        self._heap.clear()
        self._seq_of.clear()
        self._scan_seqs.clear()
        self._scan_keys.clear()

    # -- expiry
    def set_deadline(self, key: bytes, deadline_ms: int) -> None:
        self.expires[key] = deadline_ms
        heapq.heappush(self._heap, (deadline_ms, key))
        if len(self._heap) > 1024 and len(self._heap) > 4 * len(self.expires):
            self._heap = [(when, k) for k, when in self.expires.items()]
            heapq.heapify(self._heap)
        self.touch(key)

    def persist(self, key: bytes) -> bool:
        if self.expires.pop(key, None) is None:
            return False
        self.touch(key)
        return True

    def sweep(self, now_ms: int, limit: int = 10_000) -> int:
        """Remove up to ``limit`` keys whose deadline has passed; return how many."""
        removed = 0
        heap = self._heap
        while heap and heap[0][0] < now_ms and removed < limit:
            when, key = heapq.heappop(heap)
            if self.expires.get(key) == when:  # else a stale entry: deadline changed or gone
                self.expired += 1
                self.delete(key)
                removed += 1
        return removed

    # -- iteration
    def _compact_scan_order(self) -> None:
        live = [(s, k) for s, k in zip(self._scan_seqs, self._scan_keys, strict=True)
                if self._seq_of.get(k) == s]
        self._scan_seqs = [s for s, _ in live]
        self._scan_keys = [k for _, k in live]

    def scan(self, cursor: int, count: int, now_ms: int) -> tuple[int, list[bytes]]:
        """Visit about ``count`` keys created after ``cursor``; return (next cursor, live keys)."""
        start = bisect.bisect_right(self._scan_seqs, cursor)
        keys = []
        visited = 0
        i = start
        seqs, names = self._scan_seqs, self._scan_keys
        while i < len(seqs) and visited < count:
            seq, key = seqs[i], names[i]
            i += 1
            if self._seq_of.get(key) != seq:
                continue
            visited += 1
            if not self.expire_if_needed(key, now_ms):
                keys.append(key)
        if i >= len(seqs):
            return 0, keys
        return seqs[i - 1], keys

    # -- WATCH
    def watch(self, session: Session, key: bytes) -> None:
        self._watchers.setdefault(key, set()).add(session)
        session.watched.add(key)

    def unwatch_all(self, session: Session) -> None:
        for key in session.watched:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(session)
                if not watchers:
                    del self._watchers[key]
        session.watched.clear()
        session.dirty = False
