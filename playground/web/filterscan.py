"""Which connections match the view's filter, found in bounded steps (pure: no Twisted, no clock).

A filter on exchanges (``cmd``, ``http``, ``errors``, ``slow``) reads a connection's exchange
rows until one matches; a capture at its bounds holds hundreds of thousands of them, and reading
them all at once would hold the proxy's reactor for seconds. ``FilterScan.matches`` reads at most
a given number of rows per call and remembers, per filter and connection, how far it read and
which row matched: the next call goes on from there, and asking again (the page does, on every
update) reads only the exchanges that came since. It remembers the last ``max_filters`` filters.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from itertools import islice
from operator import attrgetter

from playground.web.capture import Connection, Filter

_FIRST = attrgetter("first")


class FilterScan:
    """``describe(entry) -> rows``: the table rows of one stored exchanges entry."""

    def __init__(self, describe, max_filters: int = 8):
        self.describe = describe
        self.max_filters = max_filters
        # filter -> {connection id: (last index read, index of the matching row or 0)}
        self._memo: OrderedDict[Filter, dict[int, tuple[int, int]]] = OrderedDict()

    def _progress(self, shown: Filter) -> dict[int, tuple[int, int]]:
        memo = self._memo.get(shown)
        if memo is None:
            memo = self._memo[shown] = {}
            while len(self._memo) > self.max_filters:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(shown)
        return memo

    def forget(self, live) -> None:
        """Drop what is remembered of connections not in ``live`` (ids the capture keeps)."""
        for memo in self._memo.values():
            for cid in [cid for cid in memo if cid not in live]:
                del memo[cid]

    def matches(self, shown: Filter, c: Connection, summary: dict, budget: int
                ) -> tuple[bool | None, int]:
        """Whether ``c`` (its list row: ``summary``) matches ``shown``, reading at most
        ``budget`` rows (a pipelined entry is read whole): ``(True | False, rows read)``, or
        ``(None, rows read)`` when the budget ran out first (ask again: it goes on)."""
        if not shown.by_itself(summary):
            return False, 0
        if not shown.on_exchanges:
            return True, 0
        memo = self._progress(shown)
        done, matched = memo.get(c.id, (0, 0))
        entries = c.exchanges
        first_kept = entries[0].first if entries else c.exchange_count + 1
        if matched:
            if matched >= first_kept:
                return True, 0
            done, matched = matched, 0  # its matching row was evicted: read on after it
        start = max(bisect_right(entries, done, key=_FIRST) - 1, 0)
        read = 0
        for entry in islice(entries, start, None):
            if entry.first + entry.count - 1 <= done:
                continue
            if read >= budget:
                memo[c.id] = (done, 0)
                return None, read
            for row in self.describe(entry):
                if row["index"] <= done:
                    continue
                read += 1
                if shown.row_matches(row):
                    memo[c.id] = (row["index"], row["index"])
                    return True, read
            done = entry.first + entry.count - 1
        memo[c.id] = (done, 0)
        return False, read
