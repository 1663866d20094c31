"""A filter that checks RESP rows on their stored form (``sink.peek``) before formatting them:
the same answers as formatting every row, whatever the capture, the filter and the budget
(pure with hypothesis, through the real ``WebSink``), an entry's errors count is its error rows,
and a ``cmd`` filter over a large capture formats almost nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.codec import values as resp
from playground.decode import records as R
from playground.web.capture import Capture, Exchanges, Filter
from playground.web.filterscan import _PEEKED, PEEKS_PER_ROW, FilterScan
from playground.web.sink import WebSink

PAIR = 1
NAMES = (b"GET", b"SET", b"get", b"Hset", b"My Cmd", b"a\x01b", b'q"x', b"b\\s", b"caf\xc3\xa9",
         b"x-y_1", b"", b"X" * 300)
LONG = b"v" * 5000  # over the sink's row limit: an entry of its own, or a run kept as tuples
REPLIES = (resp.Simple(b"OK"), resp.Simple(b"QUEUED"), b"value", LONG, resp.Error(b"ERR no"),
           resp.Error(b"ERR bulk", True), 7, None, [b"a", 1],
           resp.Attributed(resp.Map([]), resp.Error(b"ERR attributed")))
LATENCIES = (None, 0.0005, 0.001, 0.005, 0.0051, 0.02)

commands = st.one_of(
    st.just(()),
    st.tuples(st.sampled_from(NAMES), st.sampled_from((b"k", LONG))),
    st.tuples(st.sampled_from(NAMES)))
exchanges = st.tuples(commands, st.sampled_from(REPLIES), st.sampled_from(LATENCIES))
records = st.one_of(
    st.tuples(st.just("one"), exchanges),
    st.tuples(st.just("run"), st.lists(exchanges, min_size=2, max_size=6)),
    st.tuples(st.just("ones"), st.lists(exchanges, min_size=4, max_size=12)),  # one segment
    st.tuples(st.just("http"), st.sampled_from((200, 404, 500, None)),
              st.sampled_from(LATENCIES)),
    st.tuples(st.just("other"), st.sampled_from(("push", "notice", "unanswered",
                                                 "undecodable"))),
    st.tuples(st.just("flush")))
filters = st.fixed_dictionaries({}, optional={
    "cmd": st.sampled_from(("GET", "get", "*", "?ET", "[GS]ET", "H*", "*X*", "MY", "A*",
                            'Q"X', "CAFÉ", "X-Y_1", "X" * 300 + "*")),
    "errors": st.sampled_from(("0", "1")),
    "slow": st.sampled_from(("0", "1", "5")),
    "http": st.sampled_from(("GET /x*", "/*"))}).filter(
        lambda query: Filter.parse(query).on_exchanges)


def _record(kind, value):
    """One record of the sink's for ``kind`` (see ``records`` above)."""
    if kind == "http":
        status, latency = value
        return R.HttpExchange(PAIR, 1.0, "c", b"GET", b"/x", b"HTTP/1.1", status, b"R", latency,
                              (), (), 0, 0, None, b"", b"")
    if value == "push":
        return R.RedisPush(PAIR, 1.0, [b"message", b"ch", b"hi"])
    if value == "notice":
        return R.Notice(PAIR, 1.0, "a notice")
    if value == "unanswered":
        return R.RedisUnanswered(PAIR, 1.0, "c", (b"GET", b"k"))
    return R.Undecodable(PAIR, 1.0, "s2c", "resp", "bad", 0)


def _capture(script) -> WebSink:
    """A capture of one connection fed ``script``'s records through the real sink."""
    sink = WebSink(Capture(max_bytes=1 << 30))
    sink.capture.opened(PAIR, 1.0, "127.0.0.1:5000", "127.0.0.1:6479", "tcp:x", "s")
    sink.capture.detected(PAIR, "resp")
    _feed(sink, script)
    return sink


def _feed(sink: WebSink, script) -> None:
    for kind, *value in script:
        if kind == "one":
            command, reply, latency = value[0]
            sink.emit(R.RedisExchange(PAIR, 1.0, "c", command, reply, latency))
        elif kind == "ones":
            sink.emit_many([R.RedisExchange(PAIR, 1.0, "c", command, reply, latency)
                            for command, reply, latency in value[0]])
        elif kind == "run":
            sink.emit(R.RedisExchanges(PAIR, 1.0, "c", *map(list, zip(*value[0], strict=True))))
        elif kind == "flush":
            sink.flush()
        else:
            sink.emit(_record(kind, value[0] if kind == "other" else value))
    sink.flush()


def _formatting_every_row(sink: WebSink, shown: Filter) -> int:
    """The index of the first row that matches, every row formatted (the old way), or 0."""
    c = sink.capture.get(PAIR)
    for entry in c.exchanges:
        for row in sink.rows(entry):
            if shown.row_matches(row):
                return row["index"]
    return 0


def _answer(scan: FilterScan, shown: Filter, sink: WebSink, budget: float) -> tuple[bool, list]:
    """Ask until it answers (a bounded number of times): the answer and the work of each ask."""
    c = sink.capture.get(PAIR)
    work = []
    for _ in range(10_000):
        matched, done = scan.matches(shown, c, c.summary(2.0), budget)
        work.append(done)
        if matched is not None:
            return matched, work
    raise AssertionError("no answer after 10,000 asks")


def _matched_index(scan: FilterScan, shown: Filter) -> int:
    done, matched = scan._memo[shown][PAIR]
    return matched


@pytest.mark.pure
@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=25), st.lists(records, max_size=10), filters,
       st.integers(1, 20))
def test_peeking_gives_the_answers_of_formatting_every_row(before, after, query, budget):
    sink = _capture(before)
    shown = Filter.parse(query)
    peeking = FilterScan(sink.rows, sink.peek, sink.exchange_row)
    formatting = FilterScan(sink.rows)
    for stage in ("before", "after"):
        if stage == "after":
            _feed(sink, after)
        expected = _formatting_every_row(sink, shown)
        for scan in (peeking, formatting):
            matched, work = _answer(scan, shown, sink, budget)
            assert matched == bool(expected)
            assert _matched_index(scan, shown) == expected
        # an entry is read whole: one ask goes over the budget by at most one entry's rows,
        # each peeked and formatted at worst
        largest = max((entry.count for entry in sink.capture.get(PAIR).exchanges), default=0)
        assert all(done <= budget + largest * (1 + _PEEKED) for done in work)


@pytest.mark.pure
@settings(max_examples=200, deadline=None)
@given(st.lists(records, max_size=25))
def test_an_entry_counts_its_error_rows(script):
    sink = _capture(script)
    c = sink.capture.get(PAIR)
    for entry in c.exchanges:
        assert entry.errors == sum(row["error"] for row in sink.rows(entry))
    assert c.error_count == sum(entry.errors for entry in c.exchanges)


class Formatting:
    """The sink's ``exchange_row`` and ``rows``, counting the rows they format."""

    def __init__(self, sink: WebSink):
        self.sink = sink
        self.formatted = 0

    def rows(self, entry):
        out = self.sink.rows(entry)
        self.formatted += len(out)
        return out

    def exchange_row(self, index, exchange):
        self.formatted += 1
        return self.sink.exchange_row(index, exchange)


def _sets_then_a_get(n: int) -> WebSink:
    """A capture of ``n`` unpipelined SETs and a GET at the end, stored as the proxy's
    batches come (a thousand at a time)."""
    sink = _capture([])
    ok = resp.Simple(b"OK")
    for start in range(0, n, 1000):
        sink.emit_many([R.RedisExchange(PAIR, 1.0, "c", (b"SET", b"key:%d" % i, b"v"), ok,
                                        0.001) for i in range(start, start + 1000)])
        sink.flush()
    _feed(sink, [("one", ((b"GET", b"key:1"), b"v", 0.001))])
    return sink


@pytest.mark.memory
def test_a_cmd_filter_over_a_large_capture_formats_almost_nothing():
    n = 200_000
    sink = _sets_then_a_get(n)
    shown = Filter.parse({"cmd": "GET"})
    budget = 2000
    before = Formatting(sink)
    matched, old_asks = _answer(FilterScan(before.rows), shown, sink, budget)
    assert matched and before.formatted == n + 1
    now = Formatting(sink)
    matched, asks = _answer(FilterScan(now.rows, sink.peek, now.exchange_row), shown, sink,
                            budget)
    assert matched and now.formatted == 1  # the GET's row alone, to confirm it
    assert len(asks) <= len(old_asks) // PEEKS_PER_ROW + 2
    assert all(done <= budget + 256 for done in asks)


def _pages(scan: FilterScan, shown: Filter, sink: WebSink, limit: int, budget: float
           ) -> tuple[list[dict], list[tuple[int, float]]]:
    """One connection's rows asked page by page as the page does (``?after=`` the answer's
    ``next_after`` while it says ``more``): the rows, and (rows, work) of each answer."""
    c = sink.capture.get(PAIR)
    got, answers, after = [], [], 0
    for _ in range(10_000):
        before = Formatting(sink)
        scan.describe, scan.exchange_row = before.rows, before.exchange_row
        rows, after, more = scan.rows(shown, c, after, limit, budget)
        got += rows
        answers.append((len(rows), before.formatted))
        if not more:
            return got, answers
    raise AssertionError("still more after 10,000 answers")


@pytest.mark.pure
@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=25), st.one_of(filters, st.just({})), st.integers(1, 8),
       st.integers(1, 20))
def test_one_connections_rows_page_by_page_are_those_of_formatting_every_row(
        script, query, limit, budget):
    sink = _capture(script)
    shown = Filter.parse(query)
    expected = [row for entry in sink.capture.get(PAIR).exchanges for row in sink.rows(entry)
                if not shown.on_exchanges or shown.row_matches(row)]
    for scan in (FilterScan(sink.rows, sink.peek, sink.exchange_row), FilterScan(sink.rows)):
        got, answers = _pages(scan, shown, sink, limit, budget)
        assert got == expected
        assert all(n <= limit for n, _ in answers)


@pytest.mark.memory
def test_one_connections_filtered_answer_is_bounded_and_goes_on_where_it_stopped():
    # /api/connections/{id}?cmd=GET on 200,000 SETs and a GET: each answer formats at most a
    # budget's worth (it formatted all 200,000 rows in one answer before), and paging on
    # from next_after reaches the GET
    n = 200_000
    sink = _sets_then_a_get(n)
    shown = Filter.parse({"cmd": "GET"})
    budget = 2000
    for scan in (FilterScan(sink.rows, sink.peek, sink.exchange_row), FilterScan(sink.rows)):
        got, answers = _pages(scan, shown, sink, 5000, budget)
        assert [row["index"] for row in got] == [n + 1]
        assert len(answers) > 1
        assert all(formatted <= budget + 1000 for _, formatted in answers)  # + one entry


@pytest.mark.memory
def test_asking_on_from_the_end_makes_no_entry_of_the_ones_before(monkeypatch):
    # a connection of 5,000 pipelined runs: asked again from where it read (the page does on
    # every update), the scan bisects the stored tuples and makes an entry of the ones it
    # reads alone (making one of each took 45 ms on a full capture's 53,000 at every answer)
    sink = _capture([])
    ok = resp.Simple(b"OK")
    for i in range(5000):
        sink.emit(R.RedisExchanges(PAIR, 1.0, "c", [(b"SET", b"k%d" % i, b"v")] * 4, [ok] * 4,
                                   [0.001] * 4))
    sink.flush()
    made = []
    make = Exchanges._make
    monkeypatch.setattr(Exchanges, "_make", staticmethod(lambda t: made.append(t) or make(t)))
    scan = FilterScan(sink.rows, sink.peek, sink.exchange_row)
    c = sink.capture.get(PAIR)
    shown = Filter.parse({"cmd": "GET"})
    assert _answer(scan, shown, sink, 1e9) == (False, [pytest.approx(20_000 / PEEKS_PER_ROW)])
    made.clear()
    assert scan.matches(shown, c, c.summary(2.0), 100) == (False, 0)
    assert len(made) <= 1
    made.clear()
    rows, after, more = scan.rows(Filter.parse({}), c, 19_990, 100, 100)
    assert [r["index"] for r in rows] == list(range(19_991, 20_001)) and not more
    assert len(made) <= 3


@pytest.mark.pure
@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(records, max_size=8), min_size=1, max_size=6),
       st.one_of(filters, st.just({})), st.integers(1, 8), st.integers(1, 20))
def test_paging_a_growing_connection_neither_skips_nor_repeats_rows(parts, query, limit, budget):
    # the page asks on from max(its newest row, next_after) every update, while the connection
    # (its newest entry among them) grows between answers
    shown = Filter.parse(query)
    for peeking in (True, False):
        sink = _capture([])
        scan = (FilterScan(sink.rows, sink.peek, sink.exchange_row) if peeking
                else FilterScan(sink.rows))
        c = sink.capture.get(PAIR)
        got, after = [], 0
        for part in [*parts, []]:
            _feed(sink, part)
            sink.flush()
            for _ in range(1000):
                rows, next_after, more = scan.rows(shown, c, after, limit,
                                                   budget)
                got += rows
                after = max([after, next_after, *(row["index"] for row in rows)])
                if not more:
                    break
        expected = [row for entry in c.exchanges for row in sink.rows(entry)
                    if not shown.on_exchanges or shown.row_matches(row)]
        assert [row["index"] for row in got] == [row["index"] for row in expected]
        assert got == expected


@pytest.mark.pure
def test_an_http_filter_skips_a_resp_entry_whole():
    # no RESP row matches an http= filter: each entry is skipped at one peek's cost, not
    # peeked row by row (20,000 rows: 5,000 rows' budget before)
    sink = _sets_then_a_get(20_000)
    shown = Filter.parse({"http": "GET /*"})
    counted = Formatting(sink)
    matched, asks = _answer(FilterScan(counted.rows, sink.peek, counted.exchange_row), shown,
                            sink, 2000)
    assert matched is False and counted.formatted == 0
    entries = len(sink.capture.get(PAIR).exchanges)
    assert sum(asks) <= entries * _PEEKED < 20_000 * _PEEKED
