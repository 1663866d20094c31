"""The web view's pictures (playground.web.latency): percentiles within the stated bound of the
exact ones, memory bounded whatever the names, the per-second ring across gaps; pure."""

from __future__ import annotations

from math import ceil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.codec.values import Attributed, Error, Map, is_error
from playground.web.latency import (
    BUCKETS,
    ERROR_BOUND,
    INDEX,
    INDEX_SIZE,
    MAX_NAME,
    OTHER,
    OVERFLOW,
    PERCENTILES,
    TOP_US,
    Histogram,
    Latency,
    RateRing,
    bucket_bounds,
    index,
)

pytestmark = pytest.mark.pure

TOP = TOP_US / 1e6
ATTRIBUTED_ERROR = Attributed(Map([]), Error(b"ERR under attributes"))
IN_RANGE = st.one_of(st.floats(min_value=0, max_value=TOP, exclude_max=True),
                     st.floats(min_value=0, max_value=0.002))  # where most latencies are


def exact(samples: list[float], p: float) -> float:
    """The nearest-rank percentile: the ceil(p/100 * n)-th smallest sample."""
    ordered = sorted(samples)
    return ordered[max(1, ceil(p * len(ordered) / 100)) - 1]


@given(st.lists(IN_RANGE, min_size=1, max_size=300),
       st.lists(st.floats(min_value=0, max_value=100), max_size=4))
def test_percentiles_stay_within_the_stated_bound_of_the_exact_ones(samples, more):
    h = Histogram("GET")
    for x in samples:
        h.add(x)
    ps = list(PERCENTILES) + more + [100]
    for p, got in zip(ps, h.percentiles(ps), strict=True):
        want = exact(samples, p)
        assert abs(got - want) <= max(want * ERROR_BOUND, 0.5e-6) * (1 + 1e-9), (p, got, want)
    assert (h.min, h.max, h.count, h.timed) == (min(samples), max(samples), len(samples),
                                                len(samples))
    assert h.percentiles([100]) == [max(samples)]  # the max is exact


@given(st.lists(IN_RANGE, max_size=20), st.lists(st.floats(min_value=TOP, max_value=1e4),
                                                 min_size=1, max_size=20))
def test_above_the_range_a_percentile_is_the_max(samples, above):
    h = Histogram("GET")
    for x in samples + above:
        h.add(x)
    for p, got in zip(PERCENTILES, h.percentiles(), strict=True):
        want = exact(samples + above, p)
        if want >= TOP:  # the max, or exactly the min when it is the first rank
            assert got in (max(above), want)
        else:
            assert abs(got - want) <= max(want * ERROR_BOUND, 0.5e-6) * (1 + 1e-9)


def test_a_negative_latency_counts_in_the_first_bucket():
    h = Histogram("GET")
    h.add(-0.5)
    assert h.buckets[0] == 1 and h.percentiles([50]) == [-0.5]


@given(st.integers(min_value=0, max_value=TOP_US * 4))
def test_the_index_puts_a_microsecond_count_in_the_bucket_that_holds_it(us):
    i = index(us)
    low, high = bucket_bounds(i)
    assert round(low * 1e6) <= us and (high is None or us < round(high * 1e6))
    assert (high is None) == (us >= TOP_US)
    if us < INDEX_SIZE:
        assert INDEX[us] == i


def test_the_buckets_tile_the_range_and_are_at_most_a_sixteenth_wide():
    assert BUCKETS == OVERFLOW + 1 == 369
    assert bucket_bounds(0) == (0.0, 1e-6) and bucket_bounds(OVERFLOW) == (TOP, None)
    for i in range(OVERFLOW):
        low, high = bucket_bounds(i)
        assert bucket_bounds(i + 1)[0] == high > low
        assert high - low <= max(low * 2 * ERROR_BOUND, 1e-6) * (1 + 1e-12)
    assert TOP >= 60  # one minute fits


def test_a_summary_row_counts_errors_and_lists_the_filled_buckets():
    latency = Latency()
    latency.redis(100.2, [(b"get", b"k"), (b"GET", b"k"), (b"set", b"k", b"v")],
                  [b"v", None, Error(b"ERR wrong")], [0.0001, 0.0002, 0.003])
    latency.http(100.4, b"POST", 503, 0.25)
    latency.http(100.5, None, None, None)  # unanswered: counted, not timed
    rows = {(r["protocol"], r["name"]): r for r in latency.snapshot(100.9)["commands"]}
    get = rows["resp", "GET"]
    assert (get["count"], get["errors"], get["timed"], get["max"]) == (2, 0, 2, 0.0002)
    assert [b[2] for b in get["buckets"]] == [1, 1]
    assert all(b[0] <= x < b[1] for b, x in zip(get["buckets"], (0.0001, 0.0002), strict=True))
    assert rows["resp", "SET"]["errors"] == 1
    assert (rows["http", "POST"]["errors"], rows["http", "POST"]["p99"]) == (1, 0.25)
    assert (rows["http", "?"]["count"], rows["http", "?"]["timed"], rows["http", "?"]["p50"]
            ) == (1, 0, None)


def test_an_error_under_resp3_attributes_counts_as_an_error_as_its_row_says():
    # the list and the filters counted it (its row: error), the latency panel did not
    latency = Latency()
    latency.redis(1.0, [(b"GET", b"k")], [ATTRIBUTED_ERROR], [0.001])  # one
    latency.redis(1.0, [(b"SET", b"k", b"v")] * 2, [ATTRIBUTED_ERROR, b"OK"], [0.001] * 2)  # a run
    latency.ones([1.0] * 4, [(b"DEL", b"k")] * 4, [ATTRIBUTED_ERROR] + [1] * 3, [0.001] * 4)
    rows = {r["name"]: r for r in latency.snapshot(1.5)["commands"]}
    assert (rows["GET"]["errors"], rows["SET"]["errors"], rows["DEL"]["errors"]) == (1, 1, 1)


def test_the_protocol_and_name_choice_and_the_summed_series():
    latency = Latency(seconds=10)
    latency.redis(50.5, [(b"get", b"k")], [b"v"], [0.001])
    latency.http(52.5, b"GET", 200, 0.01)
    resp_only = latency.snapshot(52.9, protocols=("resp",))
    assert [r["name"] for r in resp_only["commands"]] == ["GET"]
    assert resp_only["series"]["exchanges"][-3:] == [1, 0, 0]
    both = latency.snapshot(52.9)
    assert [(r["protocol"], r["name"]) for r in both["commands"]] == [("resp", "GET"),
                                                                      ("http", "GET")]
    assert both["series"]["end"] == 52 and both["series"]["exchanges"][-3:] == [1, 0, 1]
    only_http = latency.snapshot(52.9, shown=lambda protocol, name: protocol == "http")
    assert [r["protocol"] for r in only_http["commands"]] == ["http"]
    assert latency.snapshot(52.9, protocols=())["series"]["exchanges"] == [0] * 10


names = st.one_of(st.binary(max_size=80), st.sampled_from([b"get", b"GET", b"Get", b"set"]))


@given(st.lists(names, max_size=400), st.integers(min_value=1, max_value=8))
def test_memory_is_bounded_whatever_the_names(raws, max_names):
    latency = Latency(max_names=max_names)
    for raw in raws:
        latency.redis(1.0, [(raw, b"x")], [b"ok"], [0.001])
    table = latency.tables["resp"]
    assert len(table.names) <= max_names
    assert len(table.spellings) <= 4 * max_names
    assert all(len(h.buckets) == BUCKETS for h in [*table.names.values(), table.other])
    assert all(len(name) <= 4 * MAX_NAME for name in table.names)  # each byte at most \xNN
    rows = latency.snapshot(1.0)["commands"]
    assert sum(r["count"] for r in rows) == len(raws)  # nothing lost: the rest is (other)
    assert len(rows) <= max_names + 1
    folded = {bytes(r[:MAX_NAME]).upper() for r in raws}
    if len(folded) > max_names:
        assert rows[-1]["name"] == OTHER
    else:
        assert OTHER not in [r["name"] for r in rows]


exchange = st.tuples(st.sampled_from([(b"GET", b"k"), (b"get",), (b"SET", b"k", b"v"), ()]),
                     st.sampled_from([b"v", None, Error(b"ERR x"), 3, ATTRIBUTED_ERROR,
                                      Attributed(Map([]), b"v")]),
                     st.one_of(st.none(), IN_RANGE, st.floats(min_value=-1, max_value=100)))


@given(st.lists(exchange, min_size=1, max_size=30),
       st.sampled_from(["mixed", "one name", "one name, one latency"]))
def test_a_pipelined_run_counts_as_its_exchanges_one_by_one(run, shape):
    """The run's shortcuts (one command name; and one latency) and the general loop agree with
    feeding the exchanges one at a time."""
    if shape != "mixed":
        first = run[0][2] if run[0][2] is not None else 0.0002
        run = [((b"GET", b"k"), reply, first if shape.endswith("latency") else latency)
               for _, reply, latency in run]
    together, apart = Latency(), Latency()
    commands, replies, latencies = (list(column) for column in zip(*run, strict=True))
    together.redis(5.0, commands, replies, latencies)
    for command, reply, latency in run:
        apart.redis(5.0, [command], [reply], [latency])
    assert together.snapshot(5.0) == apart.snapshot(5.0)


def test_spellings_of_one_name_share_its_row():
    latency = Latency()
    latency.redis(1.0, [(b"get",), (b"GET",), (b"gEt",)], [b"", b"", b""], [0.1, 0.1, 0.1])
    assert [(r["name"], r["count"]) for r in latency.snapshot(1.0)["commands"]] == [("GET", 3)]


def test_names_are_shown_escaped_as_the_console_shows_them():
    # the panel showed control characters raw (an ESC hidden in a name) and UTF-8 names as
    # Latin-1 upper-cased (b"\xce\xba" as "\u00ce\u00ba")
    latency = Latency()
    latency.redis(1.0, [(b"ge\x1b[31mt",), ("κλειδί".encode(),), (b"a\x00",)],
                  [b"", b"", b""], [0.1, 0.1, 0.1])
    names = sorted(r["name"] for r in latency.snapshot(1.0)["commands"])
    assert names == ["A\\x00", "GE\\x1b[31MT", "κλειδί"]


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=900, allow_nan=False),
                          st.integers(min_value=1, max_value=5),
                          st.integers(min_value=0, max_value=5)), max_size=60),
       st.floats(min_value=0, max_value=1200), st.integers(min_value=1, max_value=40))
def test_the_rate_ring_is_right_across_gaps_in_time(adds, now, seconds):
    """Sorted stamps with gaps of any length (some beyond the window), then one read: each
    second of the window holds what was added in it."""
    ring = RateRing(seconds)
    for ts, count, errors in sorted(adds):
        ring.add(ts, count, min(errors, count))
    got = ring.series(now)
    newest = int(max([now] + [ts for ts, _, _ in adds]))
    assert got["end"] == newest and got["seconds"] == seconds
    window = range(newest - seconds + 1, newest + 1)
    want = [sum(c for ts, c, _ in adds if int(ts) == s) for s in window]
    assert got["exchanges"] == want
    assert got["errors"] == [sum(min(e, c) for ts, c, e in adds if int(ts) == s) for s in window]


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=60))
def test_stamps_out_of_order_land_in_their_second_or_count_as_late(stamps):
    ring = RateRing(10)
    newest, kept, late = None, [], 0  # the model: a stamp older than the window so far is late
    for ts in stamps:
        ring.add(ts)
        second = int(ts)
        if newest is not None and second <= newest - 10:
            late += 1
        else:
            kept.append(second)
            newest = second if newest is None else max(newest, second)
    got = ring.series(0)
    assert ring.late == late
    end = int(max(stamps, default=0))
    assert got["exchanges"] == [kept.count(s) for s in range(end - 9, end + 1)]


def test_random_latencies_and_replies_never_raise():
    latency = Latency(max_names=2)
    latency.redis(1.0, [(), (b"",), (b"x" * 10_000,)], [None, Error(b"E"), 7], [None, -1.0, 1e9])
    rows = latency.snapshot(1.0)["commands"]
    assert sum(r["count"] for r in rows) == 3 and sum(r["errors"] for r in rows) == 1


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=100, allow_nan=False), exchange),
                max_size=60))
def test_one_exchange_at_a_time_counts_as_the_general_path(stamped):
    """``Latency.one`` (the sink's call for an unpipelined exchange, the rate ring's current
    second counted in place) agrees with a histogram and a ring fed by their own ``add``."""
    latency = Latency(seconds=10)
    ring = RateRing(10)
    names: dict[str, Histogram] = {}
    for ts, (command, reply, took) in stamped:
        latency.one(ts, command, reply, took)
        error = is_error(reply)
        ring.add(ts, 1, int(error))
        name = (command[0] if command else b"").upper().decode()
        names.setdefault(name, Histogram(name)).add(took, error)
    got = latency.snapshot(0)
    assert got["series"] == ring.series(0)
    assert sorted(got["commands"], key=lambda r: r["name"]) == [
        names[n].summary("resp") for n in sorted(names)]


many_names = st.tuples(st.sampled_from([(b"GET", b"k"), (b"get",), (b"SET", b"k", b"v"),
                                        (b"INCR", b"n"), (b"DEL", b"k")]
                                       + [(b"CMD%d" % i,) for i in range(10)]),
                       st.sampled_from([b"v", None, Error(b"ERR x"), 3]),
                       st.one_of(IN_RANGE, st.floats(min_value=0, max_value=0.016)))


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=20, allow_nan=False),
                          st.one_of(exchange, many_names)), min_size=1, max_size=60),
       st.sampled_from(["as drawn", "one name", "all timed in the table", "all timed"]),
       st.integers(0, 60))
def test_a_batch_of_exchanges_counts_as_one_at_a_time(stamped, shape, cut):
    """``Latency.ones`` (the sink's batch: one name, a few, many; latencies in and out of the
    index table; none; errors; stamps in any order; a batch after another, within or beyond
    the extremes it counted) agrees with ``one`` per exchange."""
    if shape == "one name":
        stamped = [(ts, ((b"GET", b"k"), reply, took)) for ts, (_, reply, took) in stamped]
    elif shape == "all timed in the table":  # the batch's own path, not ``one`` for each
        stamped = [(ts, (command or (b"PING",), reply,
                         abs(took) % 0.016 if took is not None else 0.001))
                   for ts, (command, reply, took) in stamped]
    elif shape == "all timed":  # beyond the index table too (a loaded proxy): still a batch
        stamped = [(ts, (command or (b"PING",), reply, abs(took) if took is not None else 0.02))
                   for ts, (command, reply, took) in stamped]
    together, apart = Latency(seconds=30), Latency(seconds=30)
    stamps = [ts for ts, _ in stamped]
    commands, replies, latencies = (list(c) for c in zip(*(e for _, e in stamped), strict=True))
    together.ones(stamps[:cut], commands[:cut], replies[:cut], latencies[:cut])
    together.ones(stamps[cut:], commands[cut:], replies[cut:], latencies[cut:])
    for ts, (command, reply, took) in stamped:
        apart.one(ts, command, reply, took)
    assert together.snapshot(20.0) == apart.snapshot(20.0)
    assert together.tables["resp"].rate.late == apart.tables["resp"].rate.late


def test_batches_of_a_few_names_keep_each_names_extremes():
    """``Latency.ones`` with two names, each batch within one second and with an error: a batch
    within the extremes counted so far, then one beyond them for one name only, then beyond
    for the other: each name's min and max, and the second's counts, as ``one`` per exchange
    keeps them."""
    together, apart = Latency(), Latency()
    commands = [(b"GET", b"k"), (b"SET", b"k", b"v")] * 6
    for latencies in ([0.001 * (i + 1) for i in range(12)],  # GET 1-11 ms, SET 2-12 ms
                      [0.005] * 12,  # within both
                      [0.0005 if i == 0 else 0.005 for i in range(12)],  # GET's min only
                      [0.013 if i == 11 else 0.005 for i in range(12)]):  # SET's max only
        replies = [Error(b"ERR x") if i == 3 else b"v" for i in range(12)]  # one error each
        together.ones([1.5] * 12, commands, replies, latencies)  # all within one second
        for command, reply, took in zip(commands, replies, latencies, strict=True):
            apart.one(1.5, command, reply, took)
        assert together.snapshot(2.0) == apart.snapshot(2.0)
    got = {r["name"]: (r["min"], r["max"]) for r in together.snapshot(2.0)["commands"]}
    assert got == {"GET": (0.0005, 0.011), "SET": (0.002, 0.013)}
