"""One direction's byte-level toxics as a sans-I/O pipeline: bytes and times in, actions out.

``Pipeline.feed(data, now)``, ``eof(now)`` and ``tick(now)`` return actions for the adapter (the
splice): ``Write(data)`` to the receiver, ``CloseWrite()`` (pass the FIN on), ``Close(toxic)`` (close
the pair with FIN, the toxic's doing), ``Abort(toxic)`` (reset the pair), ``Pause()`` / ``Resume()``
(stop / restart reading the sender) and ``Wait(at)`` (call ``tick`` at that time). Times are the
caller's clock in seconds; attributes are toxiproxy's units (ms, KB/s, bytes, us for slicer).

The toxics run in the order added, each a stage that times, splits or drops the bytes the stage
before it let through (toxiproxy's chain); the output queue keeps the order of the bytes and a FIN
always comes after the bytes before it, whatever the delays. Semantics (toxiproxy's, plus tcpplay's
``half_open``):

- ``latency``: each chunk waits ``latency`` ms, +- a random ``jitter`` ms; order is kept.
- ``bandwidth``: at most ``rate`` KB/s (1 KB = 1024 bytes), in pieces of a tenth of a second.
- ``slicer``: chunks cut into pieces of ``average_size`` +- ``size_variation`` bytes, ``delay`` us
  apart.
- ``slow_close``: the FIN waits ``delay`` ms.
- ``timeout``: nothing passes (bytes and FIN dropped); after ``timeout`` ms the pair is closed;
  0: never closed, held open until the toxic is removed.
- ``reset_peer``: the pair is reset ``timeout`` ms after the toxic starts (0: at once).
- ``limit_data``: ``bytes`` bytes pass, then the pair is closed.
- ``half_open``: from ``after`` ms on, the direction is a black hole: bytes and FIN dropped, never
  closed.

Toxicity is decided once per toxic and pipeline (one per connection and direction) with the
random generator passed in, as are the jitter and slice sizes: a seeded generator gives the same
run twice. Memory is bounded: above ``max_held`` bytes (or ``max_pieces`` pieces) queued the
pipeline says ``Pause``, and ``Resume`` once below half. Pure: no Twisted, no clock.
"""

from __future__ import annotations

import random
from collections import deque

import attrs

from playground.faults.model import Toxic

BYTE_TYPES = ("latency", "bandwidth", "slicer", "slow_close", "timeout", "reset_peer",
              "limit_data", "half_open")
# the toxics that drop or cut bytes: with none of these, every byte sent is delivered
CUTTING_TYPES = ("timeout", "reset_peer", "limit_data", "half_open")
MAX_HELD = 1024 * 1024


@attrs.frozen
class Write:
    data: bytes


@attrs.frozen
class Wait:
    at: float


@attrs.frozen
class CloseWrite:
    """Pass the sender's FIN on to the receiver (every byte before it was written)."""


@attrs.frozen
class Close:
    """Close the pair (FIN both ways): ``toxic`` did it."""

    toxic: Toxic


@attrs.frozen
class Abort:
    """Reset the pair (RST both ways): ``toxic`` did it."""

    toxic: Toxic


@attrs.frozen
class Pause:
    """Stop reading from the sender: too much is held."""


@attrs.frozen
class Resume:
    """Read from the sender again."""


_FIN = "fin"
_CLOSE = "close"


class _Stage:
    """One toxic on one pipeline. ``data`` returns the (time, bytes) it lets through, times
    non-decreasing; ``end`` the time a FIN or close passes, or None when it is swallowed."""

    closing: float | None = None  # set when this stage closes the pair (limit_data)
    cut: tuple[float, str] | None = None  # (time, _CLOSE or "abort"): a close set in advance

    def __init__(self, toxic: Toxic, rng: random.Random, start: float):
        self.toxic = toxic
        self.rng = rng
        self.start = start
        self.last = start

    def data(self, t: float, chunk: bytes) -> list[tuple[float, bytes]]:
        return [(t, chunk)]

    def end(self, t: float) -> float | None:
        return max(t, self.last)


class _Latency(_Stage):
    def data(self, t, chunk):
        a = self.toxic.attributes
        delay = a["latency"]
        if a["jitter"]:
            delay += self.rng.randint(-a["jitter"], a["jitter"])
        self.last = max(self.last, t + max(0, delay) / 1000)
        return [(self.last, chunk)]


class _Bandwidth(_Stage):
    def data(self, t, chunk):
        rate = self.toxic.attributes["rate"] * 1024  # bytes per second
        if rate <= 0:
            return [(t, chunk)]
        piece = max(1, int(rate // 10))
        out = []
        for off in range(0, len(chunk), piece):
            part = chunk[off:off + piece]
            self.last = max(self.last, t) + len(part) / rate
            out.append((self.last, part))
        return out


class _Slicer(_Stage):
    def data(self, t, chunk):
        a = self.toxic.attributes
        average = a["average_size"]
        if average <= 0:
            return [(t, chunk)]
        variation = min(a["size_variation"], average - 1)
        step = a["delay"] / 1_000_000
        out = []
        off = 0
        at = max(t, self.last)
        while off < len(chunk):
            size = average + (self.rng.randint(-variation, variation) if variation else 0)
            out.append((at, chunk[off:off + size]))
            off += size
            at += step
        self.last = at - step if out else self.last
        return out


class _SlowClose(_Stage):
    def end(self, t):
        return max(t, self.last) + self.toxic.attributes["delay"] / 1000


class _Timeout(_Stage):
    def __init__(self, toxic, rng, start):
        super().__init__(toxic, rng, start)
        if toxic.attributes["timeout"]:
            self.cut = (start + toxic.attributes["timeout"] / 1000, _CLOSE)

    def data(self, t, chunk):
        return []

    def end(self, t):
        return None


class _ResetPeer(_Stage):
    def __init__(self, toxic, rng, start):
        super().__init__(toxic, rng, start)
        self.cut = (start + toxic.attributes["timeout"] / 1000, "abort")


class _LimitData(_Stage):
    def __init__(self, toxic, rng, start):
        super().__init__(toxic, rng, start)
        self.left = toxic.attributes["bytes"]

    def data(self, t, chunk):
        if self.closing is not None:
            return []
        part = chunk[:self.left]
        self.left -= len(part)
        self.last = max(self.last, t)
        if self.left <= 0:
            self.closing = self.last
        return [(self.last, part)] if part else []


class _HalfOpen(_Stage):
    def __init__(self, toxic, rng, start):
        super().__init__(toxic, rng, start)
        self.from_ = start + toxic.attributes["after"] / 1000

    def data(self, t, chunk):
        if t >= self.from_:
            return []
        return [(t, chunk)]

    def end(self, t):
        return None if t >= self.from_ else t


_STAGES = {"latency": _Latency, "bandwidth": _Bandwidth, "slicer": _Slicer,
           "slow_close": _SlowClose, "timeout": _Timeout, "reset_peer": _ResetPeer,
           "limit_data": _LimitData, "half_open": _HalfOpen}


class Pipeline:
    """The toxics of one direction of one connection. ``stages`` holds the toxics that apply
    (their toxicity roll came up); ``held`` is the bytes queued and not yet written."""

    def __init__(self, rng: random.Random, max_held: int = MAX_HELD):
        self.rng = rng
        self.max_held = max_held
        # a queued piece costs ~100 bytes of bookkeeping: 1-byte slices would hold 100x the bytes
        self.max_pieces = max(64, max_held // 64)
        self.stages: list[_Stage] = []
        self.held = 0
        self.paused = False
        self.done = False  # closed, reset or FIN passed: nothing more comes out
        self._queue: deque = deque()  # (time, bytes | _FIN | _CLOSE, toxic)
        self._last = float("-inf")
        self._eof = False
        self._cut: tuple[float, str, Toxic] | None = None  # the earliest cut set in advance

    def __bool__(self) -> bool:
        return bool(self.stages or self._queue)

    @property
    def toxics(self) -> list[Toxic]:
        return [s.toxic for s in self.stages]

    def add(self, toxic: Toxic, now: float) -> bool:
        """Roll ``toxic``'s toxicity; add it as the last stage if it applies. True if added."""
        if toxic.type not in _STAGES or self.rng.random() >= toxic.toxicity:
            return False
        self.stages.append(_STAGES[toxic.type](toxic, self.rng, now))
        self._find_cut()
        return True

    def update(self, toxic: Toxic, now: float) -> bool:
        """Replace the stage of the toxic of that name in place (rolled again); True if kept."""
        for i, stage in enumerate(self.stages):
            if stage.toxic.name == toxic.name:
                kept = toxic.type in _STAGES and self.rng.random() < toxic.toxicity
                if kept:
                    self.stages[i] = _STAGES[toxic.type](toxic, self.rng, now)
                else:
                    del self.stages[i]
                self._find_cut()
                return kept
        return self.add(toxic, now)

    def remove(self, name: str, now: float | None = None) -> bool:
        """Drop the toxic's stage. With ``now`` and no stage left, what was queued is due at
        once, in order, as toxiproxy lets a removed toxic's held data go (a latency of hours
        removed does not keep the bytes for hours); with stages left, or without ``now``, the
        queued bytes keep their time (what delayed each is no longer known)."""
        before = len(self.stages)
        self.stages = [s for s in self.stages if s.toxic.name != name]
        self._find_cut()
        if now is not None and not self.stages and self._queue:
            self._queue = deque((min(t, now), what, toxic) for t, what, toxic in self._queue)
            self._last = min(self._last, now)
        return len(self.stages) != before

    def feed(self, data: bytes, now: float) -> list:
        """Bytes read from the sender at ``now``."""
        if self.done or self._eof or not data:
            return self.tick(now)
        items = [(now, data)]
        closing = None  # (time, stage) of a close set off by these bytes
        for stage in self.stages:
            out = []
            for t, chunk in items:
                out.extend(stage.data(t, chunk))
            items = out
            if closing is not None:
                passed = stage.end(closing[0])
                closing = (closing[0] if passed is None else passed, closing[1])
            elif stage.closing is not None:
                closing = (stage.closing, stage)
        if (closing is None and not self._queue and not self.paused and items
                and items[-1][0] <= now and self._cut is None):
            # nothing held and nothing to wait for: the bytes go out now
            self._last = max(self._last, items[-1][0])
            return [Write(items[0][1] if len(items) == 1 else b"".join(c for _, c in items))]
        for t, chunk in items:
            self._push(t, chunk, None)
            self.held += len(chunk)
        if closing is not None:
            self._push(closing[0], _CLOSE, closing[1].toxic)
            self._eof = True
        return self.tick(now)

    def eof(self, now: float) -> list:
        """The sender's FIN at ``now``: it passes after every byte before it (or never)."""
        if self.done or self._eof:
            return self.tick(now)
        self._eof = True
        t: float | None = now
        for stage in self.stages:
            t = stage.end(t)
            if t is None:  # swallowed: the receiver never hears of it
                return self.tick(now)
        self._push(t, _FIN, None)
        return self.tick(now)

    def _push(self, t: float, what, toxic):
        self._last = t = max(t, self._last)
        self._queue.append((t, what, toxic))

    def _find_cut(self) -> None:
        cuts = [(s.cut[0], s.cut[1], s.toxic) for s in self.stages if s.cut is not None]
        self._cut = min(cuts, key=lambda c: c[0]) if cuts else None

    def tick(self, now: float) -> list:
        """What is due at ``now``, then ``Wait`` for the next thing due (if any)."""
        if self.done:
            return []
        actions: list = []
        cut = self._cut
        queue = self._queue
        pending: list[bytes] = []
        while queue and queue[0][0] <= now and (cut is None or queue[0][0] < cut[0]):
            t, what, toxic = queue.popleft()
            if isinstance(what, bytes):
                pending.append(what)
                self.held -= len(what)
                continue
            self.done = True
            break
        if pending:
            actions.append(Write(b"".join(pending)))
        if self.done:
            actions.append(CloseWrite() if what == _FIN else Close(toxic))
        elif cut is not None and cut[0] <= now:
            self.done = True
            actions.append(Close(cut[2]) if cut[1] == _CLOSE else Abort(cut[2]))
        if self.done:
            queue.clear()
            self.held = 0
            return actions
        if self.paused and self.held <= self.max_held // 2 and len(queue) <= self.max_pieces // 2:
            self.paused = False
            actions.append(Resume())
        elif not self.paused and (self.held > self.max_held or len(queue) > self.max_pieces):
            self.paused = True
            actions.append(Pause())
        due = queue[0][0] if queue else None
        if cut is not None and (due is None or cut[0] < due):
            due = cut[0]
        if due is not None:
            actions.append(Wait(due))
        return actions
