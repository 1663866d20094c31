"""Which connections match the view's filter, found in bounded steps (pure: no Twisted, no clock).

A filter on exchanges (``cmd``, ``http``, ``errors``, ``slow``) reads a connection's exchange
rows until one matches; a capture at its bounds holds hundreds of thousands of them, and reading
them all at once would hold the proxy's reactor for seconds. ``FilterScan.matches`` does at most
a given amount of work per call and remembers, per filter and connection, how far it read and
which row matched: the next call goes on from there, and asking again (the page does, on every
update) reads only the exchanges that came since. It remembers the last ``max_filters`` filters.

Formatting a row costs 3-40 us; the sink can say what a filter tests of a RESP row without it
(``peek``: its command name, latency and whether it is an error, read from the stored form):
with it, an entry with no error is skipped whole by ``errors=1``, a RESP row is formatted only
when what its stored form says may match (``Filter.may_match_resp``), and then confirmed on
its formatted row (``row_matches``), so the answers are those of formatting every row. The work
is counted in formatted rows: a row (or an entry) checked on its stored form counts
``1 / PEEKS_PER_ROW``, so a call reads that many more rows in no more time. ``PEEKS_PER_ROW``
is 4: about 5 rows are checked so in the time the cheapest row (a ``SET``'s ``+OK``, 3 us) is
formatted (``bench/web_filter.py``), and a power of two keeps the counts exact.
"""

from __future__ import annotations

from collections import OrderedDict

from playground.web.capture import Connection, Filter

PEEKS_PER_ROW = 4  # rows checked on their stored form in less time than a SET's row is formatted
_PEEKED = 1 / PEEKS_PER_ROW  # a power of two: the counts add up exactly


class FilterScan:
    """``describe(entry) -> rows``: the table rows of one stored exchanges entry. ``peek``
    (optional, with ``exchange_row``): ``peek(entry)`` -> per row ``(index, command name or
    None, latency, error, exchange)`` read from the stored form without formatting, or None
    for an entry it cannot read so (``playground.web.sink.peek``); ``exchange_row(index,
    exchange)``: that row formatted. With ``peek``, an entry's ``errors`` is trusted to count
    its error rows (the sink's do)."""

    def __init__(self, describe, peek=None, exchange_row=None, max_filters: int = 8):
        self.describe = describe
        self.peek = peek
        self.exchange_row = exchange_row
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

    def matches(self, shown: Filter, c: Connection, summary: dict, budget: float
                ) -> tuple[bool | None, float]:
        """Whether ``c`` (its list row: ``summary``) matches ``shown``, doing at most
        ``budget`` work, in formatted rows (a row checked on its stored form: a fraction, see
        the module docstring; an entry is read whole): ``(True | False, work done)``, or
        ``(None, work done)`` when the budget ran out first (ask again: it goes on)."""
        if not shown.by_itself(summary):
            return False, 0
        if not shown.on_exchanges:
            return True, 0
        memo = self._progress(shown)
        done, matched = memo.get(c.id, (0, 0))
        if matched:
            oldest = c.exchanges_from(0, 1)
            if oldest and matched >= oldest[0].first:
                return True, 0
            done, matched = matched, 0  # its matching row was evicted: read on after it
        read = 0
        for entry in _entries_after(c, done):
            if read >= budget:
                memo[c.id] = (done, 0)
                return None, read
            for row, work in self._matching(shown, entry, done):
                read += work
                if row is not None:
                    memo[c.id] = (row["index"], row["index"])
                    return True, read
            done = entry.first + entry.count - 1
        memo[c.id] = (done, 0)
        return False, read

    def rows(self, shown: Filter, c: Connection, after: int, limit: int, budget: float,
             max_text: int = 0) -> tuple[list[dict], int, bool]:
        """``c``'s exchange rows after index ``after`` that match ``shown`` (all of them when
        it does not look at exchanges), at most ``limit``, doing at most ``budget`` work (as
        ``matches`` counts it; an entry is read whole) and, ``max_text`` > 0, stopping once
        their requests and replies hold that many characters (at the end of the entry):
        ``(rows, the last index read, whether there may be more)``: asked again from that
        index, it goes on. One connection's page (``/api/connections/{id}``): a filter
        matching few of a big connection's rows stops at the budget instead of formatting
        them all at once, and rows of long values stop at the text's bound."""
        out: list[dict] = []
        read = 0
        text = 0
        done = after
        for entry in _entries_after(c, after):
            if len(out) >= limit or read >= budget or (max_text and text >= max_text):
                return out[:limit], done, True
            for row, work in self._matching(shown, entry, done):
                read += work
                if row is not None:
                    out.append(row)
                    text += len(row["request"]) + len(row["reply"])
            done = entry.first + entry.count - 1
            if len(out) > limit:  # the rest of the entry: asked for again from the last shown
                return out[:limit], out[limit - 1]["index"], True
        return out, done, False

    def _matching(self, shown: Filter, entry, done: int):
        """``entry``'s rows after index ``done`` that match ``shown`` (every row when it does
        not look at exchanges), each as ``(row, work done since the last)``, then ``(None,
        the work of the rest)``. With ``peek``, an entry with no error row is skipped whole by
        ``errors``, a RESP entry by ``http``, and a RESP row is checked on its stored form first, formatted
        (``exchange_row``) only when that may match; else its rows are formatted
        (``describe``)."""
        peeked = None
        if self.peek is not None and shown.on_exchanges:
            if (shown.errors and not entry.errors) or (
                    shown.http_method and entry.kind == "redis"):
                # no error row in it, or RESP rows for an HTTP filter: none matches
                yield None, _PEEKED
                return
            peeked = self.peek(entry)
        read = 0
        if peeked is None:
            for row in self.describe(entry):
                if row["index"] > done:
                    read += 1
                    if not shown.on_exchanges or shown.row_matches(row):
                        yield row, read
                        read = 0
        else:
            may_match = shown.may_match_resp
            for index, name, latency, error, exchange in peeked:
                if index <= done:
                    continue
                read += _PEEKED
                if may_match(name, latency, error):
                    read += 1
                    row = self.exchange_row(index, exchange)
                    if shown.row_matches(row):
                        yield row, read
                        read = 0
        yield None, read


def _entries_after(c: Connection, after: int, window: int = 64):
    """``c``'s exchanges entries holding rows after index ``after``, oldest first, read from
    the store ``window`` at a time (``Connection.exchanges_from``: found by bisection, no
    pass over the entries before, no entry made of them)."""
    while True:
        entries = c.exchanges_from(after, window)
        if not entries:
            return
        yield from entries
        last = entries[-1]
        after = last.first + last.count - 1
