"""The web view's pictures: latency histograms per command and exchanges per second.

Pure (no Twisted, no clock, no I/O): every call takes its time. ``Latency`` keeps, per protocol
(``resp``, ``http``):

* per command name (RESP: the command's first word, ``GET``, ``SET``; HTTP: the method) a
  ``Histogram``: a count per log-spaced bucket (HdrHistogram's layout: ``SUB`` = 16 linear
  buckets per power of two of microseconds, 1 us .. 2**26 us = 67 s, one bucket below and one
  above: ``len(BOUNDS) + 1`` = 418 counts), the exchanges without a latency, errors, min and
  max (the count is the buckets' sum, counted when read). Memory is
  ``O(buckets)`` per name and the names are bounded (``max_names`` per protocol, 64): the
  names that come later share one ``(other)`` row. A name is at most ``MAX_NAME`` bytes.
* a ``RateRing``: exchanges and errors per whole second over the last ``SECONDS`` (300).

Error bound: a percentile (``p50``, ``p90``, ``p99``: nearest rank, the ``ceil(p/100 * n)``-th
smallest sample) is read from the bucket holding that rank, as the bucket's midpoint clamped to
the min and max seen. For an exact value ``x`` in 1 us .. 67 s, the answer is within
``x / (2 * SUB)`` of it (3.1 %): a bucket ``[lo, hi)`` of the power of two ``2**e`` is
``2**e / SUB`` wide and ``lo >= 2**e``. Below 1 us it is within 1 us; above 67 s it is the max.
``max`` and ``min`` are exact, and so is a percentile whose rank is the first or the last.

Cost per exchange: a dict look-up (by the raw name's bytes: every spelling seen is remembered,
at most ``4 * max_names`` of them), one ``bisect`` on ``BOUNDS`` for the bucket index, one
increment and two comparisons, no call (``Histogram.add`` is inlined); a pipelined run is one
call, its per-second count one addition.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from math import ceil

from playground.codec.values import Error

SUB = 16  # linear buckets per power of two
OCTAVES = 26  # 1 us .. 2**26 us (67.1 s)
BOUNDS = [(1 << e) * (SUB + j) / SUB / 1e6 for e in range(OCTAVES) for j in range(SUB)]
BOUNDS.append((1 << OCTAVES) / 1e6)  # bucket i holds [BOUNDS[i-1], BOUNDS[i]); 0: below 1 us
BUCKETS = len(BOUNDS) + 1
ERROR_BOUND = 1 / (2 * SUB)  # relative, for values in BOUNDS[0] .. BOUNDS[-1]
SECONDS = 300
MAX_NAMES = 64
MAX_NAME = 32
OTHER = "(other)"
PERCENTILES = (50, 90, 99)
PROTOCOLS = ("resp", "http")


def bucket_bounds(i: int) -> tuple[float, float | None]:
    """Bucket ``i``'s ``[low, high)`` in seconds (``high`` None: the last, unbounded)."""
    return (BOUNDS[i - 1] if i else 0.0), (BOUNDS[i] if i < len(BOUNDS) else None)


class Histogram:
    """One name's latencies: counts per bucket of ``BOUNDS``, the exchanges without a latency,
    errors, min and max. Fed inline by ``Latency`` (no call per exchange); ``add`` is the same
    for one sample."""

    __slots__ = ("name", "buckets", "untimed", "errors", "min", "max")

    def __init__(self, name: str):
        self.name = name
        self.buckets = [0] * BUCKETS
        self.untimed = 0  # exchanges without a latency (unanswered)
        self.errors = 0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, latency: float | None, error: bool = False) -> None:
        if error:
            self.errors += 1
        if latency is None:
            self.untimed += 1
            return
        self.buckets[bisect_right(BOUNDS, latency)] += 1
        if latency > self.max:
            self.max = latency
        if latency < self.min:
            self.min = latency

    @property
    def timed(self) -> int:
        return sum(self.buckets)

    @property
    def count(self) -> int:
        return self.timed + self.untimed

    def percentiles(self, ps=PERCENTILES) -> list[float | None]:
        """The ``ps``-th percentiles (nearest rank), each within the module's error bound."""
        cumulative = list(accumulate(self.buckets))
        timed = cumulative[-1]
        if not timed:
            return [None] * len(ps)
        out = []
        for p in ps:
            rank = max(1, ceil(p * timed / 100))
            if rank == 1 or rank >= timed:  # the smallest or the largest: known exactly
                out.append(self.min if rank == 1 else self.max)
                continue
            low, high = bucket_bounds(bisect_left(cumulative, rank))
            middle = self.max if high is None else (low + high) / 2
            out.append(min(max(middle, self.min), self.max))
        return out

    def summary(self, protocol: str) -> dict:
        """The API's row (JSON-ready): counts, percentiles and the non-empty buckets."""
        timed = self.timed
        row = {"protocol": protocol, "name": self.name, "count": timed + self.untimed,
               "errors": self.errors, "timed": timed,
               "min": self.min if timed else None, "max": self.max if timed else None}
        row.update(zip((f"p{p}" for p in PERCENTILES), self.percentiles(), strict=True))
        row["buckets"] = [[*bucket_bounds(i), n] for i, n in enumerate(self.buckets) if n]
        return row


class RateRing:
    """Exchanges and errors per whole second, the last ``seconds`` of them. A stamp older than
    the window is counted in ``late`` only; a gap clears the seconds it skips."""

    __slots__ = ("seconds", "counts", "errors", "last", "late")

    def __init__(self, seconds: int = SECONDS):
        self.seconds = seconds
        self.counts = [0] * seconds
        self.errors = [0] * seconds
        self.last = None  # the newest second counted
        self.late = 0

    def add(self, ts: float, count: int = 1, errors: int = 0) -> None:
        second = int(ts // 1)
        last = self.last
        if last is None or second > last:
            if last is None or second - last >= self.seconds:
                self.counts = [0] * self.seconds
                self.errors = [0] * self.seconds
            else:
                for s in range(last + 1, second + 1):
                    self.counts[s % self.seconds] = 0
                    self.errors[s % self.seconds] = 0
            self.last = last = second
        elif second <= last - self.seconds:
            self.late += count
            return
        slot = second % self.seconds
        self.counts[slot] += count
        self.errors[slot] += errors

    def series(self, now: float) -> dict:
        """The window ending at ``now``'s second (or the newest counted, if later), oldest
        first: ``{"end": SECOND, "seconds": N, "exchanges": [N ints], "errors": [N ints]}``."""
        n = self.seconds
        end = int(now // 1)
        if self.last is not None and self.last > end:
            end = self.last
        counts, errors = [0] * n, [0] * n
        if self.last is not None:
            for k, s in enumerate(range(end - n + 1, end + 1)):
                if self.last - n < s <= self.last:
                    counts[k] = self.counts[s % n]
                    errors[k] = self.errors[s % n]
        return {"end": end, "seconds": n, "exchanges": counts, "errors": errors}


class Table:
    """One protocol's histograms by name (at most ``max_names``, then ``(other)``) and its
    rate ring."""

    def __init__(self, max_names: int = MAX_NAMES, seconds: int = SECONDS):
        self.max_names = max_names
        self.names: dict[str, Histogram] = {}
        self.spellings: dict[bytes, Histogram] = {}  # raw name -> its histogram
        self.other = Histogram(OTHER)
        self.rate = RateRing(seconds)

    def histogram(self, raw: bytes) -> Histogram:
        """The histogram of the raw name ``raw`` (case-folded, cut at ``MAX_NAME`` bytes)."""
        h = self.spellings.get(raw)
        if h is not None:
            return h
        name = bytes(raw[:MAX_NAME]).upper().decode("latin-1")
        h = self.names.get(name)
        if h is None:
            if len(self.names) >= self.max_names:
                h = self.other
            else:
                h = self.names[name] = Histogram(name)
        if len(self.spellings) < 4 * self.max_names:
            self.spellings[bytes(raw)] = h
        return h

    def rows(self) -> list[Histogram]:
        """The names, most exchanges first, ``(other)`` last when it has any."""
        out = sorted(self.names.values(), key=lambda h: (-h.count, h.name))
        return out + [self.other] if self.other.count else out


class Latency:
    """See the module docstring: a ``Table`` per protocol, fed by ``playground.web.sink``."""

    def __init__(self, max_names: int = MAX_NAMES, seconds: int = SECONDS):
        if max_names < 1 or seconds < 1:
            raise ValueError("max_names and seconds must be >= 1")
        self.tables = {p: Table(max_names, seconds) for p in PROTOCOLS}
        self._resp = self.tables["resp"]
        self._http = self.tables["http"]

    def redis(self, ts: float, commands, replies, latencies) -> None:
        """RESP exchanges answered at ``ts``: commands (tuples of bytes arguments), their
        replies (``playground.codec.values``: an ``Error`` counts as an error) and latencies."""
        table = self._resp
        get = table.spellings.get
        bounds = BOUNDS
        errors = 0
        for command, reply, latency in zip(commands, replies, latencies, strict=True):
            h = get(command[0] if command else b"") or table.histogram(command[0] if command
                                                                        else b"")
            if latency is None:
                h.untimed += 1
            else:  # Histogram.add, inline: no call per exchange
                h.buckets[bisect_right(bounds, latency)] += 1
                if latency > h.max:
                    h.max = latency
                if latency < h.min:
                    h.min = latency
            if type(reply) is Error:
                h.errors += 1
                errors += 1
        table.rate.add(ts, len(commands), errors)

    def http(self, ts: float, method: bytes | None, status: int | None,
             latency: float | None) -> None:
        """An HTTP exchange (``status`` None: unanswered; >= 400 counts as an error)."""
        table = self._http
        error = status is not None and status >= 400
        table.histogram(method or b"?").add(latency, error)
        table.rate.add(ts, 1, int(error))

    def snapshot(self, now: float, protocols=PROTOCOLS, shown=None) -> dict:
        """What ``/api/latency`` answers (JSON-ready): the rows of ``protocols`` whose name
        ``shown(protocol, name)`` accepts (None: all), and their protocols' summed series."""
        rows = []
        series = None
        for protocol in protocols:
            table = self.tables.get(protocol)
            if table is None:
                continue
            rows += [h.summary(protocol) for h in table.rows()
                     if shown is None or shown(protocol, h.name)]
            one = table.rate.series(now)
            if series is None:
                series = one
            else:  # the tables' windows may end apart: both are shifted to the later end
                series = _sum_series(series, one)
        if series is None:
            series = RateRing(next(iter(self.tables.values())).rate.seconds).series(now)
        return {"commands": rows, "series": series, "error_bound": ERROR_BOUND,
                "percentiles": [f"p{p}" for p in PERCENTILES]}


def _sum_series(a: dict, b: dict) -> dict:
    end = max(a["end"], b["end"])
    n = a["seconds"]
    out = {"end": end, "seconds": n, "exchanges": [0] * n, "errors": [0] * n}
    for one in (a, b):
        shift = end - one["end"]
        for key in ("exchanges", "errors"):
            values = one[key]
            for k in range(shift, n):
                out[key][k - shift] += values[k]
    return out
