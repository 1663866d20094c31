"""The filtered connections list on a full capture: bounded work per answer, the same answer as
reading everything, newest first, paged (``filterscan.FilterScan`` pure with hypothesis; the
``/api/connections`` route in memory)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from playground.web.capture import Capture, Filter
from playground.web.filterscan import FilterScan
from playground.web.sink import rows
from playground.web.site import MAX_SCAN_ROWS, WebRoot

NAMES = (b"GET", b"SET", b"PING")


def _add(capture: Capture, pair: int, names: list[bytes]) -> None:
    """One entry of ``len(names)`` pipelined commands (a run, or one exchange), as the sink stores it."""
    commands = tuple((name, b"k") for name in names)
    if len(commands) == 1:  # one exchange is stored on its own: (command, reply, latency)
        data = (commands[0], b"v", 0.001)
    else:
        data = (commands, (b"v",) * len(names), (0.001,) * len(names))
    capture.add_exchanges(pair, 1.0, "redis", data, len(names), 0, 10)


def _open(capture: Capture, pair: int) -> None:
    capture.opened(pair, 1.0, f"127.0.0.1:{50000 + pair}", "127.0.0.1:6479", "tcp:x",
                   "127.0.0.1:6379")
    capture.detected(pair, "resp")


class Counting:
    """``rows`` that counts the rows it made."""

    def __init__(self):
        self.made = 0

    def __call__(self, entry):
        out = rows(entry)
        self.made += len(out)
        return out


def _answer(scan: FilterScan, shown: Filter, capture: Capture, pair: int, budget: int):
    """Ask until it answers; the rows read by each ask."""
    c = capture.get(pair)
    reads = []
    while True:
        matched, read = scan.matches(shown, c, c.summary(2.0), budget)
        reads.append(read)
        if matched is not None:
            return matched, reads


entries = st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5), max_size=30)


@pytest.mark.pure
@settings(max_examples=200, deadline=None)
@given(entries, entries, st.integers(1, 12), st.sampled_from(["GET", "P*", "NOPE"]))
def test_bounded_reads_give_the_answer_of_reading_everything(before, after, budget, cmd):
    capture = Capture()
    _open(capture, 1)
    for names in before:
        _add(capture, 1, names)
    shown = Filter.parse({"cmd": cmd})
    scan = FilterScan(rows)
    for stage in (before, after):
        if stage is after:
            for names in after:
                _add(capture, 1, names)
        c = capture.get(1)
        everything = shown.connection_matches(
            c.summary(2.0), (r for e in c.exchanges for r in rows(e)))
        matched, reads = _answer(scan, shown, capture, 1, budget)
        assert matched == everything
        assert all(read <= budget + 4 for read in reads)  # an entry is read whole (5 rows)
    assert _answer(scan, shown, capture, 1, budget)[1] == [0]  # asked again: nothing to read


@pytest.mark.pure
def test_asked_again_it_reads_only_what_came_since():
    capture = Capture()
    _open(capture, 1)
    for _ in range(100):
        _add(capture, 1, [b"SET"] * 10)
    describe = Counting()
    scan = FilterScan(describe)
    shown = Filter.parse({"cmd": "GET"})
    assert _answer(scan, shown, capture, 1, 300) == (False, [300, 300, 300, 100])
    _add(capture, 1, [b"SET", b"GET"])
    describe.made = 0
    assert _answer(scan, shown, capture, 1, 300) == (True, [2])
    assert describe.made == 2
    assert _answer(scan, shown, capture, 1, 300) == (True, [0])  # remembered


@pytest.mark.pure
def test_a_match_evicted_is_looked_for_again():
    capture = Capture(max_bytes=2000)
    _open(capture, 1)
    _add(capture, 1, [b"GET"])
    scan = FilterScan(rows)
    shown = Filter.parse({"cmd": "GET"})
    assert _answer(scan, shown, capture, 1, 100)[0] is True
    for _ in range(40):  # the GET goes (the oldest first)
        _add(capture, 1, [b"SET"])
    assert capture.get(1).exchanges_evicted > 0
    assert _answer(scan, shown, capture, 1, 100)[0] is False
    _add(capture, 1, [b"GET"])
    assert _answer(scan, shown, capture, 1, 100)[0] is True


@pytest.mark.pure
def test_it_remembers_a_few_filters_and_forgets_gone_connections():
    capture = Capture()
    for pair in (1, 2):
        _open(capture, pair)
        _add(capture, pair, [b"GET"])
    scan = FilterScan(rows, max_filters=2)
    for cmd in ("GET", "SET", "PING"):
        _answer(scan, Filter.parse({"cmd": cmd}), capture, 1, 10)
    assert [f.cmd for f in scan._memo] == ["SET", "PING"]
    _answer(scan, Filter.parse({"cmd": "PING"}), capture, 2, 10)
    scan.forget({2: None})
    assert all(set(memo) <= {2} for memo in scan._memo.values())


def _get(root: WebRoot, **args) -> dict:
    request = DummyRequest([b"api", b"connections"])
    request.args = {k.encode(): [str(v).encode()] for k, v in args.items()}
    return json.loads(root.render(request))


def _full_capture(connections: int, per_connection: int) -> Capture:
    """Every connection full of SETs; every 50th one has a GET at its very end."""
    capture = Capture(max_connections=connections)
    for pair in range(1, connections + 1):
        _open(capture, pair)
        for _ in range(per_connection // 10):
            _add(capture, pair, [b"SET"] * 10)
        if pair % 50 == 0:
            _add(capture, pair, [b"GET"])
    return capture


@pytest.mark.memory
def test_a_filtered_list_on_a_full_capture_is_read_in_bounded_answers():
    capture = _full_capture(200, 400)  # 80,000 rows, of which 4 GETs
    describe = Counting()
    root = WebRoot(capture, reactor=MemoryReactorClock(), assets={}, describe=describe)
    found, asks, query = [], 0, {"cmd": "GET"}
    while True:
        describe.made = 0
        out = _get(root, **query)
        asks += 1
        assert describe.made <= MAX_SCAN_ROWS + 10  # the answer read a bounded number of rows
        found += [c["id"] for c in out["connections"]]
        if not out["more"]:
            break
        query["before"] = out["before"]
    assert found == [200, 150, 100, 50]  # newest first, each once
    assert asks >= 80_000 // (MAX_SCAN_ROWS + 10)
    describe.made = 0
    again = _get(root, cmd="GET")  # the page asks on every update: only new rows are read
    assert [c["id"] for c in again["connections"]] == [200, 150, 100, 50]
    assert not again["more"] and describe.made == 0
    _add(capture, 120, [b"SET"] * 10)  # changed since: looked at again, only its new rows
    _add(capture, 120, [b"GET"])
    describe.made = 0
    changed = _get(root, cmd="GET", since=capture.seq - 1)
    assert [c["id"] for c in changed["connections"]] == [120] and describe.made == 11


@pytest.mark.memory
def test_the_list_is_paged_newest_first():
    capture = Capture()
    for pair in range(1, 8):
        _open(capture, pair)
    root = WebRoot(capture, reactor=MemoryReactorClock(), assets={})
    out = _get(root, limit=3)
    assert [c["id"] for c in out["connections"]] == [7, 6, 5]
    assert (out["more"], out["before"]) == (True, 5)
    out = _get(root, limit=3, before=5)
    assert [c["id"] for c in out["connections"]] == [4, 3, 2]
    out = _get(root, limit=3, before=2)
    assert [c["id"] for c in out["connections"]] == [1]
    assert (out["more"], out["before"]) == (False, None)
    assert [c["id"] for c in _get(root)["connections"]] == [7, 6, 5, 4, 3, 2, 1]
    assert _get(root, limit=0)["error"].startswith("limit: must be 1-")
