"""``proxy --fault``: specs read into toxics, bad ones a UsageError naming --fault and the field."""

from __future__ import annotations

import pytest
from twisted.python import usage

from playground.proxy.service import Options

pytestmark = pytest.mark.pure


def parse(*argv):
    options = Options()
    options.parseOptions(["--target", "6379", *argv])
    return options


def test_faults_repeat_in_order():
    options = parse("--fault", "latency:downstream:200ms,jitter=50ms",
                    "--fault", "bandwidth:upstream:64", "--fault", "down:5s")
    assert [(t.name, dict(t.attributes)) for t in options["fault"]] == [
        ("latency_downstream", {"latency": 200, "jitter": 50}),
        ("bandwidth_upstream", {"rate": 64}),
        ("down_downstream", {"after": 0, "duration": 5000}),
    ]
    assert parse()["fault"] == []


def test_resp_faults_are_taken():
    options = parse("--fault", "resp:GET user:*:error=-LOADING", "--fault", "resp:SET:reset,nth=3,name=r")
    assert [(t.type, t.attributes["action"]) for t in options["fault"]] == [
        ("resp", "error"), ("resp", "reset")]


def test_http_faults_are_taken():
    options = parse("--fault", "http:GET /api/*:status=503,retry_after=5")
    [toxic] = options["fault"]
    assert (toxic.type, toxic.attributes["action"], toxic.attributes["status"]) == (
        "http", "status", 503)


@pytest.mark.parametrize("spec, says", [
    ("latency:200parsecs", "--fault: 'latency:200parsecs': latency.latency: unknown time unit"),
    ("nope", "--fault: 'nope': type: unknown toxic 'nope'"),
    ("http:GET /*:delay=1s,nope=1", "--fault: 'http:GET /*:delay=1s,nope=1': http: unknown "
     "attribute 'nope'"),
])
def test_bad_fault_is_a_usage_error_naming_the_flag(spec, says):
    with pytest.raises(usage.UsageError) as e:
        parse("--fault", spec)
    assert str(e.value).startswith(says)


def test_two_toxics_of_one_name_need_a_name():
    with pytest.raises(usage.UsageError, match="already given; add name=OTHER"):
        parse("--fault", "latency:1s", "--fault", "latency:2s")
    assert len(parse("--fault", "latency:1s", "--fault", "latency:2s,name=more")["fault"]) == 2
