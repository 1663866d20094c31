"""The RESP-aware faults' pure core: error, delay, drop, close and reset on matching commands,
pipeline order, MULTI, subscribe mode and RESP3 pushes, giving up on garbage; hypothesis: any
split gives the same output, no toxics give the input back exactly, random bytes never raise."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.codec.encoder import encode_command
from playground.faults.model import make_toxic, parse_fault
from playground.faults.respfaults import (
    FinToClient,
    FinToServer,
    Note,
    RespFaults,
    ToClient,
    ToServer,
)
from playground.faults.toxics import Abort, Close, Wait
from tests.support.faults import split

pytestmark = pytest.mark.pure


def core(*specs, seed=1, max_held=None):
    c = RespFaults(random.Random(seed)) if max_held is None else RespFaults(
        random.Random(seed), max_held)
    for i, spec in enumerate(specs):
        if isinstance(spec, str):
            spec = parse_fault(spec + (f",name=t{i}" if i else ""))
        assert c.add(spec)
    return c


def cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class Run:
    """What came out, by kind: bytes each way, injected replies, notes, waits, cuts."""

    def __init__(self):
        self.server = b""
        self.client = b""
        self.injected = []
        self.notes = []
        self.waits = []
        self.cuts = []
        self.fins = []

    def take(self, actions):
        for a in actions:
            if type(a) is ToServer:
                self.server += a.data
            elif type(a) is ToClient:
                self.client += a.data
                if a.injected is not None:
                    self.injected.append((a.injected.name, a.data))
            elif type(a) is Note:
                self.notes.append(a.text)
            elif type(a) is Wait:
                self.waits.append(a.at)
            elif type(a) in (Close, Abort):
                self.cuts.append(type(a))
            elif type(a) in (FinToServer, FinToClient):
                self.fins.append((type(a), len(self.client), len(self.server)))
        return self

    def key(self):
        return (self.server, self.client, self.injected, self.cuts)


def drive(c, client_chunks, server_chunks, end=100.0):
    run = Run()
    for chunk in client_chunks:
        run.take(c.client_data(chunk, 0.0))
    for chunk in server_chunks:
        run.take(c.server_data(chunk, 0.0))
    run.take(c.tick(end))
    return run


# -- the actions ---------------------------------------------------------------------------
def test_error_is_injected_in_reply_order_and_the_command_not_forwarded():
    c = core("resp:GET user:*:error=-LOADING")
    sent = cmd(b"SET", b"a", b"1") + cmd(b"GET", b"user:1") + cmd(b"GET", b"a")
    run = drive(c, [sent], [b"+OK\r\n", b"$1\r\n1\r\n"])
    assert run.server == cmd(b"SET", b"a", b"1") + cmd(b"GET", b"a")
    assert run.client == b"+OK\r\n-LOADING\r\n$1\r\n1\r\n"
    assert run.injected == [("resp_downstream", b"-LOADING\r\n")]
    assert run.notes == ["injected -LOADING for GET user:1"]


def test_a_password_does_not_reach_the_log_line():
    # "fault resp_downstream injected -ERR x for AUTH sup3rsecret on pair 1" was logged
    c = core("resp:*:error=-ERR x", "resp:AUTH:delay=10ms")
    sent = cmd(b"AUTH", b"sup3rsecret") + cmd(b"auth", b"bob", b"hunter2") + \
        b"AUTH inl1nepw\r\n"
    run = drive(c, [sent], [])
    assert len(run.notes) == 3 and not any(
        pw in note for note in run.notes for pw in ("sup3rsecret", "hunter2", "inl1nepw"))
    assert run.notes[0] == "injected -ERR x for AUTH (redacted)"
    assert run.notes[1] == "injected -ERR x for auth bob"


def test_error_waits_for_the_replies_of_earlier_commands():
    c = core("resp:GET user:*:error=MOVED 3999 127.0.0.1:6381")
    run = Run().take(c.client_data(cmd(b"SET", b"a", b"1") + cmd(b"GET", b"user:1"), 0.0))
    assert run.client == b""  # SET's reply is not there yet
    run.take(c.server_data(b"+OK\r\n", 0.0))
    assert run.client == b"+OK\r\n-MOVED 3999 127.0.0.1:6381\r\n"


def test_key_glob_and_command_glob():
    c = core("resp:HGET* user:*:error=-ERR no")
    run = drive(c, [cmd(b"HGETALL", b"user:2") + cmd(b"HGET", b"other", b"f") + cmd(b"GET",
                                                                                    b"user:1")],
                [b"$1\r\nx\r\n", b"$1\r\ny\r\n"])
    assert run.client == b"-ERR no\r\n$1\r\nx\r\n$1\r\ny\r\n"


def test_inline_commands_match_too():
    run = drive(core("resp:get:error=-LOADING"), [b"get k\r\nPING\r\n"], [b"+PONG\r\n"])
    assert run.server == b"PING\r\n"
    assert run.client == b"-LOADING\r\n+PONG\r\n"


def test_delay_holds_the_reply_and_those_behind_it():
    c = core("resp:GET:delay=200ms")
    run = Run().take(c.client_data(cmd(b"GET", b"a") + cmd(b"PING"), 1.0))
    run.take(c.server_data(b"$1\r\n1\r\n+PONG\r\n", 1.5))
    assert run.client == b""
    assert run.waits == [1.7]
    run.take(c.tick(1.69))
    assert run.client == b""
    run.take(c.tick(1.7))
    assert run.client == b"$1\r\n1\r\n+PONG\r\n"


def test_delay_only_for_matching_commands():
    c = core("resp:GET:delay=200ms")
    run = Run().take(c.client_data(cmd(b"SET", b"a", b"1"), 0.0))
    run.take(c.server_data(b"+OK\r\n", 0.0))
    assert run.client == b"+OK\r\n"


def test_drop_forwards_the_command_and_swallows_its_reply():
    c = core("resp:GET:drop")
    run = drive(c, [cmd(b"GET", b"a") + cmd(b"PING")], [b"$1\r\n1\r\n+PONG\r\n"])
    assert run.server == cmd(b"GET", b"a") + cmd(b"PING")
    assert run.client == b"+PONG\r\n"
    assert run.notes == ["drops the reply of GET a"]


@pytest.mark.parametrize(("action", "cut"), [("reset", Abort), ("close", Close)])
def test_close_and_reset_at_the_nth_match_before_forwarding_it(action, cut):
    c = core(f"resp:SET:{action},nth=3")
    run = Run()
    for _ in range(2):
        run.take(c.client_data(cmd(b"SET", b"a", b"b"), 0.0))
        assert run.cuts == []
    run.take(c.client_data(cmd(b"GET", b"a") + cmd(b"SET", b"a", b"b") + cmd(b"PING"), 0.0))
    assert run.cuts == [cut]
    assert run.server == cmd(b"SET", b"a", b"b") * 2 + cmd(b"GET", b"a")


def test_nth_acts_on_the_nth_match_only():
    c = core("resp:GET:error=-X,nth=2")
    run = drive(c, [cmd(b"GET", b"a") * 3], [b"$1\r\n1\r\n" * 2])
    assert run.client == b"$1\r\n1\r\n-X\r\n$1\r\n1\r\n"


def test_toxicity_zero_never_applies():
    c = RespFaults(random.Random(1))
    assert not c.add(make_toxic("resp", toxicity=0.0, attributes={"command": "GET"}))
    run = drive(c, [cmd(b"GET", b"a")], [b"$1\r\n1\r\n"])
    assert run.client == b"$1\r\n1\r\n"


def test_removed_toxic_stops_acting():
    c = core("resp:GET:error=-X")
    c.remove("resp_downstream")
    assert drive(c, [cmd(b"GET", b"a")], [b"+v\r\n"]).client == b"+v\r\n"


# -- what must not break -----------------------------------------------------------------------
def test_errors_pass_inside_multi_and_on_exec():
    c = core("resp:SET:error=-X")
    sent = cmd(b"MULTI") + cmd(b"SET", b"a", b"1") + cmd(b"EXEC") + cmd(b"SET", b"b", b"2")
    run = drive(c, [sent], [b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n"])
    assert run.server == cmd(b"MULTI") + cmd(b"SET", b"a", b"1") + cmd(b"EXEC")
    assert run.client == b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n-X\r\n"


def test_resp3_pushes_are_not_replies():
    c = core("resp:GET:delay=100ms")
    run = Run().take(c.client_data(cmd(b"PING") + cmd(b"GET", b"a"), 0.0))
    push = b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"
    run.take(c.server_data(push + b"+PONG\r\n", 0.0))
    assert run.client == push + b"+PONG\r\n"  # the push fills neither slot
    run.take(c.server_data(b"$1\r\n1\r\n", 0.0))
    assert run.client == push + b"+PONG\r\n"  # GET's reply is held
    run.take(c.tick(0.1))
    assert run.client.endswith(b"$1\r\n1\r\n")


def test_faults_pass_after_subscribe():
    c = core("resp:PING:error=-X")
    sent = cmd(b"SUBSCRIBE", b"a", b"b") + cmd(b"PING")
    replies = (b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n"
               b":2\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n")
    run = drive(c, [sent], split(replies, [5, 40, 61]))
    assert run.server == sent
    assert run.client == replies
    assert c.passing


def test_hello_reply_is_one_reply():
    c = core("resp:GET:error=-X")
    hello = b"%1\r\n+server\r\n+redis\r\n"
    run = drive(c, [cmd(b"HELLO", b"3") + cmd(b"GET", b"a")], [hello])
    assert run.client == hello + b"-X\r\n"


def test_garbage_from_the_client_gives_up_once_and_passes_bytes():
    c = core("resp:GET:error=-X")
    run = drive(c, [cmd(b"GET", b"a") + b"*1\r\n:5\r\n", b"more"], [b"$1\r\n1\r\n"])
    assert run.server == b"*1\r\n:5\r\nmore"
    assert run.client == b"-X\r\n$1\r\n1\r\n"
    assert len([n for n in run.notes if "stop" in n]) == 1


def test_an_http_request_is_left_alone():
    c = core("resp:GET:error=-X")
    request = b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n"
    run = drive(c, [request], [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    assert run.server == request
    assert run.client == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert run.injected == []


def test_garbage_from_the_server_gives_up():
    c = core("resp:GET:delay=1s")
    run = drive(c, [cmd(b"GET", b"a") + cmd(b"GET", b"b")], [b"$1\r\n1\r\n", b"?what\r\n"],
                end=0.0)
    assert run.client == b"$1\r\n1\r\n?what\r\n"  # the delay is cancelled, order kept
    assert any("stop" in n for n in run.notes)


def test_more_than_max_held_gives_up():
    c = core("resp:GET:delay=1s", max_held=100)
    run = drive(c, [cmd(b"GET", b"a")], [b"$200\r\n" + b"x" * 200 + b"\r\n"], end=0.0)
    assert run.client == b"$200\r\n" + b"x" * 200 + b"\r\n"
    assert c.passing


def test_server_fin_comes_after_the_held_reply():
    c = core("resp:GET:delay=100ms")
    run = Run().take(c.client_data(cmd(b"GET", b"a"), 0.0))
    run.take(c.server_data(b"$1\r\n1\r\n", 0.0))
    run.take(c.server_eof(0.0))
    assert run.fins == []
    run.take(c.tick(0.1))
    assert run.fins == [(FinToClient, 7, len(cmd(b"GET", b"a")))]


def test_client_fin_sends_an_unfinished_command_first():
    c = core("resp:GET:error=-X")
    run = Run().take(c.client_data(b"*2\r\n$3\r\nGET", 0.0))
    run.take(c.client_eof(0.0))
    assert run.server == b"*2\r\n$3\r\nGET"
    assert run.fins == [(FinToServer, 0, len(run.server))]


# -- hypothesis ------------------------------------------------------------------------------
_NAMES = [b"GET", b"SET", b"PING", b"HGET", b"DEL"]
_KEYS = [b"user:1", b"user:22", b"a", b"b"]
_SPECS = ["resp:GET user:*:error=-LOADING", "resp:GET:delay=50ms", "resp:SET:drop",
          "resp:HGET:error=-MOVED 1 127.0.0.1:1,nth=2", "resp:PING:delay=10ms"]
commands = st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(_KEYS), st.booleans()),
                    max_size=12)


def _encode(commands):
    return b"".join(b"%s %s\r\n" % (n, k) if inline else cmd(n, k) for n, k, inline in commands)


def _replies(commands, specs):
    """The server's replies to what a core with ``specs`` forwards (each a distinct bulk)."""
    probe = core(*specs)
    forwarded = Run().take(probe.client_data(_encode(commands), 0.0)).server
    n = len([None for _ in _forwarded(forwarded)])
    return b"".join(b"$2\r\n%02d\r\n" % i for i in range(n))


def _forwarded(data):
    from playground.codec.parser import RespParser
    return RespParser(inline=True).feed(data)


@given(commands, st.lists(st.sampled_from(_SPECS), max_size=3, unique=True),
       st.lists(st.integers(0, 10_000), max_size=8), st.lists(st.integers(0, 10_000), max_size=8))
def test_any_split_gives_the_same_output(cmds, specs, client_cuts, server_cuts):
    sent = _encode(cmds)
    replies = _replies(cmds, specs)
    whole = drive(core(*specs), [sent], [replies])
    pieces = drive(core(*specs), split(sent, client_cuts), split(replies, server_cuts))
    assert pieces.key() == whole.key()
    bytewise = drive(core(*specs), [sent[i:i + 1] for i in range(len(sent))],
                     [replies[i:i + 1] for i in range(len(replies))])
    assert bytewise.key() == whole.key()


@given(st.binary(max_size=300), st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=6))
def test_without_matching_toxics_the_bytes_pass_exactly(client, server, cuts):
    c = core("resp:NOSUCHCOMMAND:error=-X")
    run = drive(c, split(client, cuts), split(server, cuts))
    run.take(c.client_eof(0.0))
    run.take(c.server_eof(0.0))
    assert run.server == client
    assert run.client == server


@given(commands, st.binary(max_size=200), st.binary(max_size=200),
       st.lists(st.sampled_from(_SPECS + ["resp:*:close", "resp:GET:reset,nth=2"]),
                max_size=3, unique=True))
def test_random_bytes_never_raise(cmds, client_noise, server_noise, specs):
    c = core(*specs)
    c.client_data(_encode(cmds) + client_noise, 0.0)
    c.server_data(server_noise, 0.0)
    c.tick(1.0)
    c.server_eof(1.0)
    c.client_eof(1.0)


def test_a_faults_globs_do_not_stay_in_a_process_wide_cache():
    # a fault's command and key globs come from the toxiproxy API's clients; fnmatch kept each
    # distinct one compiled for the process (up to 32,768): toxics made and deleted with new
    # patterns grew the proxy without bound
    import fnmatch

    before = fnmatch._compile_pattern.cache_info().currsize
    for i in range(300):
        c = core(f"resp:X{i}* user:{i}*:error=-LOADING")
        run = drive(c, [cmd(b"GET", b"user:1")], [b"$1\r\nv\r\n"])
        assert b"LOADING" not in run.client
    assert fnmatch._compile_pattern.cache_info().currsize - before < 10
    run = drive(core("resp:G?T user:*:error=-LOADING"), [cmd(b"GET", b"user:1")], [])
    assert b"-LOADING" in run.client


def test_many_toxics_alive_match_with_the_globs_compiled_when_they_were_made(monkeypatch):
    # the globs were matched through a process-wide cache of 64 compiled patterns: with more
    # toxics than that alive, every command compiled every toxic's glob again
    from playground.common import globs

    c = core(*(f"resp:X{i}* user:{i}*:error=-LOADING" for i in range(100)),
             "resp:G?T user:*:error=-LOADING")
    compiled = []
    translate = globs.translate
    monkeypatch.setattr(globs, "translate", lambda p: compiled.append(p) or translate(p))
    run = drive(c, [cmd(b"SET", b"user:1", b"v") + cmd(b"X7", b"user:70") + cmd(b"X7", b"k")
                    + cmd(b"GET", b"user:1")], [b"+OK\r\n$1\r\nv\r\n"])
    assert run.client == b"+OK\r\n-LOADING\r\n$1\r\nv\r\n-LOADING\r\n"
    assert compiled == []


def test_a_toxics_globs_are_compiled_from_its_attributes_and_not_compared():
    t = parse_fault("resp:get user:*:error=-LOADING")
    assert t.globs["command"]("GET") and not t.globs["command"]("get")  # the name, upper-cased
    assert t.globs["key"]("user:1") and not t.globs["key"]("User:1")
    assert make_toxic("resp").globs == {"command": None, "key": None}  # "*" matches anything
    changed = t.evolve(attributes={"key": "k[0-9]"})
    assert changed.globs["key"]("k1") and not changed.globs["key"]("user:1")
    assert t == parse_fault("resp:get user:*:error=-LOADING") and "globs" not in repr(t)
    assert make_toxic("latency").globs == {}


def test_a_removed_delay_lets_go_of_the_replies_it_holds():
    # removing it through the API left a reply held for its whole delay (up to 2**53 ms)
    faults = RespFaults(random.Random(1))
    assert faults.add(parse_fault("resp:GET:delay=1000000s"))
    sent = faults.client_data(encode_command("GET", "k") + encode_command("PING"), 0.0)
    assert [type(a) for a in sent if type(a) is ToServer]
    out = faults.server_data(b"$1\r\nv\r\n+PONG\r\n", 1.0)
    assert not [a for a in out if type(a) is ToClient]
    faults.remove("resp_downstream")
    out = faults.forget("resp_downstream", 2.0)
    assert b"".join(a.data for a in out if type(a) is ToClient) == b"$1\r\nv\r\n+PONG\r\n"
