"""The web view's pictures: latency histograms per command and exchanges per second.

Pure (no Twisted, no clock, no I/O): every call takes its time. ``Latency`` keeps, per protocol
(``resp``, ``http``):

* per command name (RESP: the command's first word, ``GET``, ``SET``; HTTP: the method) a
  ``Histogram``: a count per bucket (HdrHistogram's layout, 1 us units: 32 buckets of 1 us,
  then 16 per power of two up to 2**26 us = 67 s, and one above: ``BUCKETS`` = 369 counts),
  the exchanges without a latency, errors, min and max (the count is the buckets' sum, made
  when read). Memory is ``O(buckets)`` per name and the names are bounded (``max_names`` per
  protocol, 64): the names that come later share one ``(other)`` row. A name is at most
  ``MAX_NAME`` bytes.
* a ``RateRing``: exchanges and errors per whole second over the last ``SECONDS`` (300).

Error bound: a percentile (``p50``, ``p90``, ``p99``: nearest rank, the ``ceil(p/100 * n)``-th
smallest sample) is read from the bucket holding that rank, as the bucket's midpoint clamped to
the min and max seen. For an exact value ``x`` up to 67 s, the answer is within
``max(x / 32, 0.5 us)`` of it (3.1 %): from 32 us up, a bucket ``[j * 2**e, (j + 1) * 2**e)``
has ``j >= 16``, so half its width is at most a 32nd of its low bound; below, buckets are 1 us
wide. Above 67 s it is the max. ``max`` and ``min`` are exact, and so is a percentile whose rank
is the first or the last. A negative latency (the clock went back) counts in the first bucket.

Cost per exchange: a dict look-up (by the raw name's bytes: every spelling seen is remembered,
at most ``4 * max_names`` of them), the bucket index from a table (``INDEX``, by whole
microseconds, below 16 ms; a few integer operations above), one increment and two comparisons,
no call (``Histogram.add`` is inlined); a pipelined run is one call, its per-second count one
addition, and a run of one command name (``redis-benchmark -P 16``) leaves the look-up, the
comparisons and the error check to builtins, once per run: when its latencies are all one
(the commands came in one read, their replies in another: the usual case), it is one
increment in all.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from itertools import accumulate, compress, repeat
from math import ceil, floor
from operator import add, eq, itemgetter

from playground.codec.values import Attributed, Error, is_error
from playground.decode.views import escape

SUB = 16  # buckets per power of two (HdrHistogram's sub-bucket half count), a power of two
TOP_US = 1 << 26  # 67.1 s: the last bucket holds what is longer
OVERFLOW = SUB * (TOP_US.bit_length() - SUB.bit_length()) + SUB  # 368: that last bucket's index
BUCKETS = OVERFLOW + 1
ERROR_BOUND = 1 / (2 * SUB)  # relative, from 16 us up (0.5 us absolute below)
SECONDS = 300
MAX_NAMES = 64
MAX_NAME = 32
OTHER = "(other)"
PERCENTILES = (50, 90, 99)
PROTOCOLS = ("resp", "http")
_first = itemgetter(0)
_FEW = 8  # exchanges in a batch worth its counters
_MICROSECONDS = (1e6).__mul__  # seconds -> microseconds, as ``int(latency * 1e6)``


def index(us: int) -> int:
    """The bucket of a latency of ``us`` whole microseconds."""
    if us < 2 * SUB:
        return max(us, 0)
    if us >= TOP_US:
        return OVERFLOW
    e = us.bit_length() - SUB.bit_length()  # us >> e is SUB .. 2 * SUB - 1
    return SUB * e + (us >> e)


INDEX_SIZE = 1 << 14  # 16.4 ms: the latencies whose bucket is looked up (a 128 KiB list)
_SMALL = list(range(BUCKETS))  # one int object per index, shared by the table
INDEX = [_SMALL[index(us)] for us in range(INDEX_SIZE)]
_LAST = INDEX_SIZE - 1


def bucket_bounds(i: int) -> tuple[float, float | None]:
    """Bucket ``i``'s ``[low, high)`` in seconds (``high`` None: the last, unbounded)."""
    if i < 2 * SUB:
        return i / 1e6, (i + 1) / 1e6
    if i >= OVERFLOW:
        return TOP_US / 1e6, None
    e = i // SUB - 1
    j = i - SUB * e
    return (j << e) / 1e6, ((j + 1) << e) / 1e6


class Histogram:
    """One name's latencies: counts per bucket (``index``), the exchanges without a latency,
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
        us = int(latency * 1e6)
        self.buckets[INDEX[us] if 0 <= us < INDEX_SIZE else index(us)] += 1
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
               "min": _ns(self.min) if timed else None, "max": _ns(self.max) if timed else None}
        row.update(zip((f"p{p}" for p in PERCENTILES), map(_ns, self.percentiles()), strict=True))
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
        name = escape(bytes(raw[:MAX_NAME]).upper())  # as the console shows it
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
        # callables that hand over what an adapter queued (the web sink's batch): ``snapshot``
        # calls them first, so it counts everything handed to the adapter
        self.before_read: list = []

    def redis(self, ts: float, commands, replies, latencies) -> None:
        """RESP exchanges answered at ``ts``: commands (tuples of bytes arguments), their
        replies (``playground.codec.values``: an ``Error`` counts as an error, and so does one
        under RESP3 attributes, as its row says) and latencies."""
        if len(commands) > 1 and self._run(self._resp, ts, commands, replies, latencies):
            return
        one = self.one
        for command, reply, latency in zip(commands, replies, latencies, strict=True):
            one(ts, command, reply, latency)

    def one(self, ts: float, command, reply, latency: float | None) -> None:
        """One RESP exchange (``redis`` with one of each; the hot path of unpipelined
        traffic: no tuple made, the rate ring's current second counted in place)."""
        table = self._resp
        raw = command[0] if command else b""
        h = table.spellings.get(raw) or table.histogram(raw)
        if latency is None:
            h.untimed += 1
        else:  # Histogram.add, inline: no call per exchange
            us = int(latency * 1e6)
            h.buckets[INDEX[us] if 0 <= us < INDEX_SIZE else index(us)] += 1
            if latency > h.max:
                h.max = latency
            if latency < h.min:
                h.min = latency
        # is_error(reply), inline: this runs per unpipelined exchange
        error = type(reply) is Error or (type(reply) is Attributed
                                         and type(reply.value) is Error)  # as its row says
        if error:
            h.errors += 1
        rate = table.rate
        second = int(ts // 1)
        if second == rate.last:  # RateRing.add, inline for the second being counted
            slot = second % rate.seconds
            rate.counts[slot] += 1
            if error:
                rate.errors[slot] += 1
        else:
            rate.add(ts, 1, int(error))

    def ones(self, stamps, commands, replies, latencies, errors: bool | None = None) -> None:
        """Unpipelined RESP exchanges, many at once (the web sink's batch): as ``one`` for
        each, with the per-exchange work left to builtins: the bucket indexes looked up by
        ``map`` and counted per (name, bucket) by ``Counter``, each name's min and max taken
        by ``min``/``max`` over its latencies, the per-second counts counted per second,
        errors looked at only when there is one. A latency beyond the index table (16 ms and
        more: a loaded proxy's) is looked up as the table's last and moved to its own bucket
        after. An exchange without a latency, an empty command or a negative latency sends
        the batch through ``one``. ``errors``: False when the caller knows that no reply is
        an error (None: looked at)."""
        table = self._resp
        try:
            names = list(map(_first, commands))
            # floor, not int (faster): they differ on negative latencies, which go to ``one``
            us = list(map(floor, map(_MICROSECONDS, latencies)))
        except (IndexError, TypeError):  # an empty command, an exchange without a latency
            us = None
        low = high = 0
        if us and len(us) >= _FEW:
            low, high = min(latencies), max(latencies)  # us's are floor(1e6 * these)
        if not us or len(us) < _FEW or low < 0:
            one = self.one
            for exchange in zip(stamps, commands, replies, latencies, strict=True):
                one(*exchange)
            return
        beyond_table = floor(_MICROSECONDS(high)) > _LAST
        if beyond_table:
            exact = us
            us = list(map(min, us, repeat(_LAST)))
        spellings = table.spellings
        histograms = {raw: spellings.get(raw) or table.histogram(raw) for raw in set(names)}
        if len(histograms) == 1:  # one command name (a batch of GETs)
            (h,) = histograms.values()
            buckets = h.buckets
            for i, n in Counter(map(INDEX.__getitem__, us)).items():
                buckets[i] += n
            extremes = ((h, low, high),)
        else:  # counted per (name, bucket), the pair as one number: name's place << 10 | bucket
            places = {raw: k << 10 for k, raw in enumerate(histograms)}
            found = list(histograms.values())
            for key, n in Counter(map(add, map(places.__getitem__, names),
                                      map(INDEX.__getitem__, us))).items():
                found[key >> 10].buckets[key & 1023] += n
            # a name's own extremes only where the batch's go beyond what a histogram has
            beyond = [(raw, h) for raw, h in histograms.items() if low < h.min or high > h.max]
            if len(beyond) <= 8:  # a pass per name, by builtins
                extremes = [(h, min(compress(latencies, map(eq, names, repeat(raw)))),
                             max(compress(latencies, map(eq, names, repeat(raw)))))
                            for raw, h in beyond]
            else:  # many names: one pass in Python
                lows, highs = {}, {}
                for raw, latency in zip(names, latencies, strict=True):
                    if latency < lows.get(raw, latency + 1):
                        lows[raw] = latency
                    if latency > highs.get(raw, latency - 1):
                        highs[raw] = latency
                extremes = [(histograms[raw], lows[raw], highs[raw]) for raw in lows]
        for h, low, high in extremes:
            if high > h.max:
                h.max = high
            if low < h.min:
                h.min = low
        if beyond_table:  # counted in the table's last bucket: moved to their own
            last = INDEX[_LAST]
            for raw, u in zip(compress(names, map(_LAST.__lt__, exact)),
                              filter(_LAST.__lt__, exact), strict=True):
                buckets = histograms[raw].buckets
                buckets[last] -= 1
                buckets[index(u)] += 1
        failed: Counter = Counter()
        kinds = set(map(type, replies)) if errors is not False else ()
        if Error in kinds or Attributed in kinds:
            for name, stamp, reply in zip(names, stamps, replies, strict=True):
                if is_error(reply):
                    histograms[name].errors += 1
                    failed[floor(stamp)] += 1
        rate = table.rate
        first, last = floor(min(stamps)), floor(max(stamps))
        if first == last:  # the batch within one second (the common case): no Counter
            rate.add(first, len(stamps), failed[first])
            return
        for second, n in Counter(map(floor, stamps)).items():
            rate.add(second, n, failed[second])

    @staticmethod
    def _run(table: Table, ts: float, commands, replies, latencies) -> bool:
        """A pipelined run of one command (the common case: ``redis-benchmark -P``) with the
        per-exchange work left to builtins but the index; False: not such a run."""
        try:
            names = set(map(_first, commands))
            low, high = min(latencies), max(latencies)
        except (IndexError, TypeError):  # an empty command, an exchange without a latency
            return False
        if len(names) != 1:
            return False
        h = table.histogram(names.pop())
        buckets = h.buckets
        if low == high:  # sent in one read, answered in one: the usual pipelined run
            us = int(low * 1e6)
            buckets[INDEX[us] if 0 <= us < INDEX_SIZE else index(us)] += len(latencies)
        else:
            for latency in latencies:
                us = int(latency * 1e6)
                buckets[INDEX[us] if 0 <= us < INDEX_SIZE else index(us)] += 1
        if high > h.max:
            h.max = high
        if low < h.min:
            h.min = low
        kinds = set(map(type, replies))
        errors = sum(map(is_error, replies)) if Error in kinds or Attributed in kinds else 0
        h.errors += errors
        table.rate.add(ts, len(commands), errors)
        return True

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
        for hand_over in self.before_read:
            hand_over()
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


def _ns(seconds: float | None) -> float | None:
    """Seconds rounded to the nanosecond (``0.004`` rather than ``0.0040000000000048885``)."""
    return None if seconds is None else round(seconds, 9)


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
