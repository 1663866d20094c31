"""The web view's filter (``capture.Filter``): parsing its query values, matching rows and
connections (pure, hypothesis: it never lets through what does not match), and the API's query
parameters on ``WebRoot`` in memory (only matching connections and exchanges; 400 naming a bad
parameter)."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from playground.codec import values as resp
from playground.decode import records as R
from playground.web.capture import BadFilter, Capture, Filter
from playground.web.site import WebRoot


def _row(kind="redis", request="GET k", error=False, latency=0.001):
    return {"index": 1, "ts": 1.0, "kind": kind, "request": request, "reply": "",
            "latency": latency, "request_size": 1, "reply_size": 1, "error": error}


@pytest.mark.pure
def test_parse_reads_every_parameter_and_an_empty_query_is_inactive():
    f = Filter.parse({"proto": "RESP", "cmd": "h*", "errors": "1", "slow": "5",
                      "client": "127.0.0.1:*"})
    assert (f.proto, f.cmd, f.errors, f.slow, f.client) == ("resp", "H*", True, 0.005,
                                                           "127.0.0.1:*")
    g = Filter.parse({"http": "get /api/*"})
    assert (g.http_method, g.http_path) == ("GET", "/api/*")
    assert not Filter.parse({}).active and not Filter.parse({"slow": ""}).active


@pytest.mark.pure
@pytest.mark.parametrize("name, value", [
    ("proto", "smtp"), ("errors", "yes"), ("slow", "fast"), ("slow", "-1"),
    ("http", "GET / extra")])
def test_a_bad_value_names_its_parameter(name, value):
    with pytest.raises(BadFilter) as raised:
        Filter.parse({name: value})
    assert raised.value.name == name and str(raised.value).startswith(name + ":")


@pytest.mark.pure
def test_rows_match_by_command_http_errors_and_latency():
    assert Filter.parse({"cmd": "get"}).row_matches(_row())
    assert not Filter.parse({"cmd": "get"}).row_matches(_row(request="GETSET k v"))
    assert Filter.parse({"cmd": "H*"}).row_matches(_row(request="HGET h f"))
    assert not Filter.parse({"cmd": "GET"}).row_matches(_row("http", "GET /"))
    assert Filter.parse({"http": "GET /a*"}).row_matches(_row("http", "GET /abc?x=1"))
    assert not Filter.parse({"http": "POST /a*"}).row_matches(_row("http", "GET /abc"))
    assert Filter.parse({"http": "POST,GET /a*"}).row_matches(_row("http", "GET /abc"))
    assert Filter.parse({"http": "/a*"}).row_matches(_row("http", "DELETE /abc"))
    assert Filter.parse({"http": "get"}).row_matches(_row("http", "GET /abc"))
    assert Filter.parse({"errors": "1"}).row_matches(_row(error=True))
    assert not Filter.parse({"errors": "1"}).row_matches(_row())
    assert Filter.parse({"slow": "5"}).row_matches(_row(latency=0.006))
    assert not Filter.parse({"slow": "5"}).row_matches(_row(latency=0.004))
    assert not Filter.parse({"slow": "0"}).row_matches(_row(latency=None))


@pytest.mark.pure
def test_a_connection_matches_by_itself_or_by_one_of_its_exchanges():
    summary = {"protocol": "resp", "client": "127.0.0.1:40001"}
    assert Filter.parse({"proto": "resp", "client": "127.0.0.1:*"}).connection_matches(summary)
    assert not Filter.parse({"proto": "http"}).connection_matches(summary)
    assert not Filter.parse({"client": "10.*"}).connection_matches(summary)
    assert not Filter.parse({"cmd": "GET"}).connection_matches(summary, [])
    assert Filter.parse({"cmd": "GET"}).connection_matches(
        summary, [_row(request="SET k v"), _row()])


_names = st.sampled_from(["GET", "SET", "HGET", "HSET", "DEL", "PING"])
_rows = st.builds(_row, kind=st.sampled_from(["redis", "http", "push"]),
                  request=st.one_of(st.builds(lambda n: n + " k", _names),
                                    st.sampled_from(["GET /", "POST /api/x", "GET /a?b"])),
                  error=st.booleans(),
                  latency=st.one_of(st.none(), st.floats(0, 0.02)))
_queries = st.fixed_dictionaries({}, optional={
    "cmd": st.sampled_from(["GET", "h*", "*SET", "?ET"]),
    "http": st.sampled_from(["GET /*", "POST,GET /api/*", "* /a"]),
    "errors": st.sampled_from(["0", "1"]), "slow": st.sampled_from(["0", "1", "10"])})


@pytest.mark.pure
@given(_queries, st.lists(_rows, max_size=8))
def test_a_filter_never_lets_through_what_does_not_match(query, rows):
    f = Filter.parse(query)
    for row in rows:
        if not f.row_matches(row):
            continue
        if query.get("errors") == "1":
            assert row["error"]
        if "slow" in query:
            assert row["latency"] is not None and row["latency"] * 1000 > float(query["slow"])
        if "cmd" in query:
            assert row["kind"] == "redis"
            assert fnmatchcase(row["request"].split()[0], query["cmd"].upper())
        if "http" in query:
            method, path = query["http"].split()
            assert row["kind"] == "http"
            got_method, target = row["request"].split()
            assert method == "*" or got_method in method.split(",")
            assert fnmatchcase(target.split("?")[0], path)
    assert f.connection_matches({"protocol": "", "client": ""}, rows) == (
        any(f.row_matches(r) for r in rows) if f.on_exchanges else True)


def _capture() -> Capture:
    cap = Capture()
    cap.opened(1, 1.0, "127.0.0.1:40001", "127.0.0.1:6479", "tcp:6379")
    cap.detected(1, "resp")
    cap.add_exchanges(1, 1.0, "redis", (((b"SET", b"k", b"v"), (b"GET", b"k"), (b"HGET", b"h")),
                      (b"OK", b"v", "-ERR wrong type"), (0.001, 0.008, 0.002)), 3, 1, 10)
    cap.opened(2, 2.0, "10.0.0.9:40002", "127.0.0.1:6479", "tcp:6379")
    cap.detected(2, "resp")
    cap.add_exchanges(2, 2.0, "redis", ((b"PING",), b"PONG", 0.0001), 1, 0, 4)
    return cap


def _get(root: WebRoot, path: bytes, **args: str):
    request = DummyRequest(path.split(b"/"))
    request.args = {k.encode(): [v.encode()] for k, v in args.items()}
    answer = root.render(request)
    return request.responseCode or 200, json.loads(answer)


@pytest.mark.memory
def test_the_api_lists_only_matching_connections_and_exchanges():
    root = WebRoot(_capture(), reactor=MemoryReactorClock(), assets={})
    ids = lambda answer: [c["id"] for c in answer[1]["connections"]]  # noqa: E731
    assert ids(_get(root, b"api/connections")) == [2, 1]  # newest first
    assert ids(_get(root, b"api/connections", cmd="get")) == [1]
    assert ids(_get(root, b"api/connections", cmd="PING")) == [2]
    assert ids(_get(root, b"api/connections", errors="1")) == [1]
    assert ids(_get(root, b"api/connections", slow="5")) == [1]
    assert ids(_get(root, b"api/connections", client="10.*")) == [2]
    assert ids(_get(root, b"api/connections", proto="http")) == []
    status, answer = _get(root, b"api/connections/1", cmd="H*")
    assert status == 200 and [r["request"] for r in answer["exchanges"]] == ["HGET h"]
    _, answer = _get(root, b"api/connections/1", slow="5")
    assert [r["request"] for r in answer["exchanges"]] == ["GET k"]
    _, answer = _get(root, b"api/connections/1")
    assert len(answer["exchanges"]) == 3


@pytest.mark.memory
def test_a_bad_filter_is_a_400_naming_the_parameter():
    root = WebRoot(_capture(), reactor=MemoryReactorClock(), assets={})
    for path in (b"api/connections", b"api/connections/1"):
        status, answer = _get(root, path, slow="soon")
        assert status == 400 and answer["error"].startswith("slow:")


@pytest.mark.memory
def test_one_connections_filtered_answer_reads_a_bounded_number_of_rows():
    # ?cmd=GET on a connection of 20,000 SETs and a GET at the end: the first answer reads
    # about MAX_SCAN_ROWS rows, holds none, says more and where it stopped; asked on from
    # there (as the page does), the answers reach the GET (before, one answer formatted all)
    from playground.web.sink import WebSink
    from playground.web.site import MAX_SCAN_ROWS

    sink = WebSink(Capture())
    cap = sink.capture
    cap.opened(1, 1.0, "127.0.0.1:40001", "127.0.0.1:6479", "tcp:6379")
    cap.detected(1, "resp")
    ok = resp.Simple(b"OK")
    for start in range(0, 20_000, 500):
        for i in range(start, start + 500):
            sink.emit(R.RedisExchange(1, 1.0, "c", (b"SET", b"k%d" % i, b"v"), ok, 0.001))
        sink.flush()
    sink.emit(R.RedisExchange(1, 1.0, "c", (b"GET", b"k1"), b"v", 0.001))
    sink.flush()
    root = WebRoot(cap, reactor=MemoryReactorClock(), assets={}, describe=sink.rows)
    formatted = []
    describe = root.scan.describe
    root.scan.describe = lambda entry: formatted.append(len(out := describe(entry))) or out
    _, first = _get(root, b"api/connections/1", cmd="GET")
    assert first["exchanges"] == [] and first["more"] and 0 < first["next_after"] < 20_000
    assert sum(formatted) <= MAX_SCAN_ROWS + 500  # a budget's worth, and the entry it was in
    after, found = first["next_after"], []
    for _ in range(100):
        _, answer = _get(root, b"api/connections/1", cmd="GET", after=str(after))
        found += [r["request"] for r in answer["exchanges"]]
        after = answer["next_after"]
        if not answer["more"]:
            break
    assert found == ["GET k1"] and after == 20_001


@pytest.mark.pure
def test_a_filter_pattern_does_not_stay_in_a_process_wide_cache():
    # each distinct cmd/http/client glob of a request stayed compiled in fnmatch's cache (up to
    # 32768 of them, about 40 kB each for 4 kB patterns): any web client could grow the proxy
    # by gigabytes, one distinct ?cmd= at a time
    import fnmatch

    before = fnmatch._compile_pattern.cache_info().currsize
    for i in range(300):
        f = Filter.parse({"cmd": f"x{i}*", "client": f"c{i}*", "http": f"GET /p{i}*"})
        assert not f.row_matches(_row(request="GET k"))
        assert not f.row_matches(_row(kind="http", request="GET /q"))
        assert not f.by_itself({"client": "127.0.0.1:1"})
    assert fnmatch._compile_pattern.cache_info().currsize - before < 10
    f = Filter.parse({"cmd": "g?t", "client": "127.*"})
    assert f.row_matches(_row(request="GET k")) and f.by_itself({"client": "127.0.0.1:1"})
    assert Filter.parse({"http": "GET /a*"}).row_matches(_row(kind="http", request="GET /ab?x"))


@pytest.mark.pure
def test_a_filters_globs_are_compiled_when_it_is_made_and_match_as_fnmatchcase(monkeypatch):
    # matched through a process-wide cache of 64 compiled patterns, more filters than that alive
    # compiled their globs again on every row
    from playground.common import globs

    by_cmd = [Filter.parse({"cmd": f"g{i}*", "client": f"10.0.0.{i}:*"}) for i in range(100)]
    by_http = [Filter.parse({"http": f"GET /p{i}/*"}) for i in range(100)]
    compiled = []
    translate = globs.translate
    monkeypatch.setattr(globs, "translate", lambda p: compiled.append(p) or translate(p))
    for i, (f, g) in enumerate(zip(by_cmd, by_http, strict=True)):
        assert f.cmd_matches(f"G{i}X") and not f.cmd_matches(f"X{i}")
        assert f.row_matches(_row("redis", f"g{i}x k")) and not f.row_matches(_row("redis", "x"))
        assert f.may_match_resp(f"G{i}", None, False) and not f.may_match_resp("X", None, False)
        assert f.by_itself({"client": f"10.0.0.{i}:5000"})
        assert not f.by_itself({"client": f"10.0.1.{i}:5000"})
        assert g.row_matches(_row("http", f"GET /p{i}/a?q"))
        assert not g.row_matches(_row("http", f"GET /q{i}/a"))
    assert compiled == []
    assert Filter.parse({"cmd": "G*"}) == Filter(cmd="G*") and Filter().cmd_matches("ANY")
