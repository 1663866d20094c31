"""The fault model: checked toxics, toxiproxy's JSON both ways, the --fault syntax, the live set."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.faults.model import (
    STREAMS,
    TOXIC_TYPES,
    FaultError,
    ToxicSet,
    make_toxic,
    parse_fault,
    toxic_from_json,
)

pytestmark = pytest.mark.pure


def test_attributes_are_complete_with_defaults():
    toxic = make_toxic("latency", attributes={"latency": 200})
    assert toxic.name == "latency_downstream"
    assert dict(toxic.attributes) == {"latency": 200, "jitter": 0}
    assert toxic.toxicity == 1.0


def test_to_json_is_toxiproxys_shape():
    toxic = make_toxic("bandwidth", stream="upstream", toxicity=0.5, attributes={"rate": 64})
    assert toxic.to_json() == {"name": "bandwidth_upstream", "type": "bandwidth",
                               "stream": "upstream", "toxicity": 0.5,
                               "attributes": {"rate": 64}}


@pytest.mark.parametrize("body, field", [
    ({"type": "nope"}, "type"),
    ({"type": "latency", "stream": "sideways"}, "stream"),
    ({"type": "latency", "toxicity": 2}, "toxicity"),
    ({"type": "latency", "attributes": {"latency": -1}}, "latency.latency"),
    ({"type": "latency", "attributes": {"latency": True}}, "latency.latency"),
    ({"type": "latency", "attributes": {"colour": 1}}, "colour"),
    ({"type": "limit_data", "attributes": {"bytes": 1.5}}, "limit_data.bytes"),
    ({"type": "latency", "name": "a b"}, "name"),
    ({"attributes": {}}, "type"),
    ({"type": "latency", "extra": 1}, "extra"),
])
def test_bad_json_names_the_field(body, field):
    with pytest.raises(FaultError, match=field.replace(".", r"\.")):
        toxic_from_json(body)


@pytest.mark.parametrize("text, type_, stream, attributes", [
    ("latency:downstream:200ms,jitter=50ms", "latency", "downstream",
     {"latency": 200, "jitter": 50}),
    ("latency:1.5s", "latency", "downstream", {"latency": 1500, "jitter": 0}),
    ("bandwidth:upstream:64", "bandwidth", "upstream", {"rate": 64}),
    ("limit_data:1k", "limit_data", "downstream", {"bytes": 1024}),
    ("slicer:upstream:10,delay=1ms", "slicer", "upstream",
     {"average_size": 10, "size_variation": 0, "delay": 1000}),
    ("down:5s", "down", "downstream", {"after": 0, "duration": 5000}),
    ("slicer:1,delay=9us", "slicer", "downstream",
     {"average_size": 1, "size_variation": 0, "delay": 9}),
    ("reset_peer:upstream", "reset_peer", "upstream", {"timeout": 0}),
    ("down,after=500ms", "down", "downstream", {"after": 500, "duration": 0}),
    ("latency,jitter=5", "latency", "downstream", {"latency": 0, "jitter": 5}),
])
def test_fault_syntax(text, type_, stream, attributes):
    toxic = parse_fault(text)
    assert (toxic.type, toxic.stream, dict(toxic.attributes)) == (type_, stream, attributes)


def test_fault_syntax_name_and_toxicity():
    toxic = parse_fault("timeout:upstream:1s,name=slow_up,toxicity=0.25")
    assert (toxic.name, toxic.toxicity, toxic.attributes["timeout"]) == ("slow_up", 0.25, 1000)


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("latency:downstream:200parsecs", "time unit"),
    ("latency:a:b:c", "expected TYPE"),
    ("limit_data:lots", "limit_data.bytes"),
    ("latency,toxicity=x", "toxicity"),
    ("sideways:1", "unknown toxic"),
    ("latency:sideways:200ms", "latency: stream: expected upstream or downstream, got 'sideways'"),
    ("latency:Upstrem:1s", "stream: expected upstream or downstream, got 'Upstrem'"),
])
def test_bad_fault_says_what(text, words):
    with pytest.raises(FaultError, match=words):
        parse_fault(text)


_NUMERIC = [(type_, key) for type_, schema in sorted(TOXIC_TYPES.items())
            for key, default in schema.items() if not isinstance(default, str)]


@pytest.mark.parametrize("type_, key", _NUMERIC)
@pytest.mark.parametrize("value", [10**400, 1e30, "9" * 400, 2**53 + 1],
                         ids=["10**400", "1e30", "9*400", "2**53+1"])
def test_a_number_too_large_is_a_fault_error_naming_the_field(type_, key, value):
    # 10**400 ms overflowed float division in the pipeline (a 500 from the API); "9" * 400
    # overflowed int() in the --fault parser (a traceback from twistd)
    with pytest.raises(FaultError, match=rf"{type_}\.{key}: .*at most"):
        make_toxic(type_, attributes={key: value})


def test_a_fault_too_large_is_a_fault_error():
    with pytest.raises(FaultError, match=r"latency\.latency: .*at most"):
        parse_fault("latency:" + "9" * 400)


def test_the_largest_number_is_kept():
    assert make_toxic("latency", attributes={"latency": 2**53}).attributes["latency"] == 2**53


_ATTRIBUTE_VALUES = {int: st.integers(0, 10**9), float: st.floats(0, 1e9),
                     str: st.text(max_size=40)}


@st.composite
def toxics(draw):
    type_ = draw(st.sampled_from(sorted(TOXIC_TYPES)))
    schema = TOXIC_TYPES[type_]
    attributes = {}
    for key, default in schema.items():
        if key == "action":
            continue
        if key == "status":
            attributes[key] = draw(st.integers(200, 599))
        elif draw(st.booleans()):
            attributes[key] = draw(_ATTRIBUTE_VALUES[type(default)])
    name = draw(st.none() | st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True))
    return make_toxic(type_, name=name, stream=draw(st.sampled_from(STREAMS)),
                      toxicity=draw(st.floats(0, 1)), attributes=attributes)


@given(toxics())
def test_json_round_trip(toxic):
    assert toxic_from_json(toxic.to_json()) == toxic


@given(st.text(max_size=80))
def test_parse_fault_raises_nothing_but_fault_error(text):
    try:
        toxic = parse_fault(text)
    except FaultError:
        return
    assert toxic.type in TOXIC_TYPES and toxic.stream in STREAMS


@given(st.lists(st.sampled_from(["latency", "bandwidth", ":", ",", "=", "upstream", "200ms",
                                 "jitter", "toxicity", "0.5", "resp", "http", "GET", " ", "*",
                                 "error", "-LOADING", "nth", "1k", "name", "x"]), max_size=12))
def test_parse_fault_near_misses_raise_nothing_but_fault_error(words):
    try:
        parse_fault("".join(words))
    except FaultError:
        pass


@given(st.dictionaries(st.sampled_from(["name", "type", "stream", "toxicity", "attributes", "x"]),
                       st.none() | st.integers() | st.text(max_size=10) | st.floats()
                       | st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8),
                                         max_size=3)))
def test_from_json_raises_nothing_but_fault_error(body):
    try:
        toxic_from_json(body)
    except FaultError:
        pass


def test_toxic_set_tells_listeners_and_keeps_order():
    heard = []
    toxics_ = ToxicSet()
    stop = toxics_.listen(lambda event, toxic: heard.append((event, toxic.name)))
    toxics_.add(make_toxic("latency"))
    toxics_.add(make_toxic("limit_data", stream="upstream"))
    toxics_.update("latency_downstream", attributes={"latency": 5})
    assert toxics_.get("latency_downstream").attributes == {"latency": 5, "jitter": 0}
    assert [t.name for t in toxics_] == ["latency_downstream", "limit_data_upstream"]
    toxics_.remove("limit_data_upstream")
    stop()
    toxics_.reset()
    assert len(toxics_) == 0
    assert heard == [("added", "latency_downstream"), ("added", "limit_data_upstream"),
                     ("updated", "latency_downstream"), ("removed", "limit_data_upstream")]


def test_toxic_set_refuses_duplicates_and_bounds_its_size():
    toxics_ = ToxicSet(limit=1)
    toxics_.add(make_toxic("latency"))
    with pytest.raises(FaultError, match="already exists"):
        toxics_.add(make_toxic("latency"))
    with pytest.raises(FaultError, match="at most 1"):
        toxics_.add(make_toxic("latency", stream="upstream"))
    with pytest.raises(KeyError):
        toxics_.remove("nope")


def test_protocol_fault_target_and_error_may_hold_colons():
    moved = parse_fault("resp:GET user:*:error=-MOVED 3999 127.0.0.1:6381")
    assert (moved.attributes["key"], moved.attributes["error"]) == (
        "user:*", "-MOVED 3999 127.0.0.1:6381")
    assert parse_fault("resp:GET user:error*:delay=1").attributes["key"] == "user:error*"



@pytest.mark.parametrize("name", ["a", "x" * 64, "redis_1.main:6379-b", "", "x" * 65, "a b",
                                  "é", "٣", "a/b", "a\n"])
def test_a_toxic_a_proxy_and_the_name_flag_take_the_same_names(name):
    """One rule (``valid_name``) for a toxic's name, a proxy's in the API and ``--name``."""
    from twisted.python import usage

    from playground.faults.apioptions import check_options
    from playground.faults.model import NAME_RULE, valid_name
    from playground.faults.registry import ApiError, proxy_fields

    valid = 0 < len(name) <= 64 and all(c.isascii() and (c.isalnum() or c in "_.:-")
                                        for c in name)
    assert valid_name(name) is valid
    for check, error in ((lambda: make_toxic("latency", name=name), FaultError),
                         (lambda: proxy_fields({"name": name, "upstream": "127.0.0.1:6379"}),
                          ApiError),
                         (lambda: check_options({"name": name}), usage.UsageError)):
        if valid:
            check()
        else:
            with pytest.raises(error) as e:
                check()
            assert NAME_RULE in str(e.value) or (error is ApiError and name == "")  # "missing"


@pytest.mark.parametrize("status", [0, 99, 100, 101, 199, 600, 1000])
def test_an_http_status_fault_answers_with_a_final_status(status):
    # the API took 1000 (curl: 'Unsupported response code') and --fault took 100-199: an
    # interim response the client answers by waiting on, so the next pipelined response became
    # this request's and every later one shifted by one
    with pytest.raises(FaultError, match=f"http.status: expected 200-599, got {status}"):
        toxic_from_json({"type": "http", "attributes": {"action": "status", "status": status}})
    with pytest.raises(FaultError, match="http.status: expected 200-599"):
        parse_fault(f"http:* /x:status={status}")
    for fine in (200, 418, 599):
        assert make_toxic("http", attributes={"status": fine}).attributes["status"] == fine
