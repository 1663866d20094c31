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
    # a negative value is a number, out of range (it was "expected a number, got '-1'")
    ("bandwidth:-1", "--fault: 'bandwidth:-1': bandwidth.rate: must be >= 0, got '-1'"),
    ("latency:-5ms", "--fault: 'latency:-5ms': latency.latency: must be >= 0, got '-5ms'"),
    ("latency:-", "--fault: 'latency:-': latency.latency: expected a number, got '-'"),
    # an unknown size unit says which it takes, as an unknown time unit does
    ("limit_data:1x", "--fault: 'limit_data:1x': limit_data.bytes: unknown unit 'x' "
     "(use b, k, kb, m, mb)"),
    ("bandwidth:64k", "--fault: 'bandwidth:64k': bandwidth.rate: unknown unit 'k' "
     "(a plain number)"),
    # digits 0-9 only: int() and float() also read a sign, '_' and other scripts' digits
    ("http:GET /*:status=503,nth=+2", "--fault: 'http:GET /*:status=503,nth=+2': http.nth: "
     "expected a whole number (digits 0-9 only), got '+2'"),
    ("http:GET /*:status=503,retry_after=1_0", "--fault: 'http:GET /*:status=503,"
     "retry_after=1_0': http.retry_after: expected a whole number"),
    ("http:GET /*:status=\u0665\u0660\u0663", "--fault: 'http:GET /*:status=\u0665\u0660\u0663': "
     "http.status: expected a whole number"),
    ("latency:1s,toxicity=+0.5", "--fault: 'latency:1s,toxicity=+0.5': toxicity: expected a "
     "number from 0 to 1, got '+0.5'"),
    ("latency:1s,toxicity=0_5", "--fault: 'latency:1s,toxicity=0_5': toxicity: expected"),
])
def test_bad_fault_is_a_usage_error_naming_the_flag(spec, says):
    with pytest.raises(usage.UsageError) as e:
        parse("--fault", spec)
    assert str(e.value).startswith(says)


def test_two_toxics_of_one_name_need_a_name():
    with pytest.raises(usage.UsageError, match="already given; add name=OTHER"):
        parse("--fault", "latency:1s", "--fault", "latency:2s")
    assert len(parse("--fault", "latency:1s", "--fault", "latency:2s,name=more")["fault"]) == 2


def test_the_help_shows_every_fault_type_with_examples_that_parse():
    """``--help`` is where a user learns the --fault syntax: it names every type the proxy takes
    (the http faults were missing), and each example it gives is a spec the proxy accepts."""
    import re

    from playground.faults.model import TOXIC_TYPES

    text = " ".join(Options.opt_fault.__doc__.split())
    for kind in TOXIC_TYPES:
        assert re.search(rf"\b{kind}:", text), f"--fault help does not show {kind}"
    examples = re.findall(r"\b(?:resp|http):[^,;]+?:[a-z_]+(?:=[^,;\s]+)?(?:,[a-z_]+=[^,;\s]+)*",
                          text)
    assert len(examples) >= 8, examples
    for spec in examples:
        parse("--fault", spec)


def test_decode_none_takes_what_its_help_says_it_takes(tmp_path):
    """--decode none's help names what still works beside it and what needs decoding."""
    from playground.proxy.decoding import OPT_PARAMETERS

    [help_text] = [p[3] for p in OPT_PARAMETERS if p[0] == "decode"]
    assert "--pcap, --web and faults still work" in help_text
    parse("--decode", "none", "--pcap", str(tmp_path / "o.pcap"), "--web", "0",
          "--fault", "latency:10ms")
    for flag, value in (("--json", str(tmp_path / "o.jsonl")), ("--only", "GET"),
                        ("--skip", "PING"), ("--http-filter", "GET /x")):
        assert flag in help_text
        with pytest.raises(usage.UsageError, match="need"):
            parse("--decode", "none", flag, value)
