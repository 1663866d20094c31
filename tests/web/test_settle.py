"""The web view alone on the chain's byte path settles its reads per batch (``settles_later``):
what it stores and serves is, at every moment, a prefix of what the pcap's per-read hold-back
gives (the same masks, no secret byte shown before it is masked), with any split of the
traffic and readers at any point; the hold-back's bound and its end-of-stream scan included."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.codec.encoder import encode_command as cmd
from playground.decode import chain as chain_module
from playground.decode.chain import MAX_HELD, Chain
from playground.web.capture import Capture
from playground.web.sink import WebSink
from tests.support.chain import GET, OK, SUMMARY, FakePcap, masked_pcap_streams, pair, view_stream

pytestmark = pytest.mark.pure

C2S, S2C = "c2s", "s2c"
CONFIG_REPLY = b"*2\r\n$11\r\nrequirepass\r\n$14\r\nhunter2-secret\r\n"
RESP = [
    (C2S, cmd(b"AUTH", b"hunter2-secret")), (S2C, b"+OK\r\n"),
    (C2S, cmd(b"SET", b"key", b"v" * 40)), (S2C, b"+OK\r\n"),
    (C2S, cmd(b"HELLO", b"3", b"AUTH", b"default", b"pw-secret-42")),
    (S2C, b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
    (C2S, cmd(b"CONFIG", b"GET", b"requirepass")), (S2C, CONFIG_REPLY),
    (C2S, cmd(b"GET", b"key")), (S2C, b"$3\r\nabc\r\n"),
]
HTTP = [(C2S, GET), (S2C, OK), (C2S, GET), (S2C, OK)]
TEXT = [(C2S, b"HELO x\r\n"), (C2S, b"AUTH PLAIN c2VjcmV0LXRleHQ=\r\n"), (S2C, b"235 ok\r\n")]
SECRETS = (b"hunter2", b"pw-secret", b"s3cr3t", b"c2VjcmV0")


def split(messages, cuts):
    """The messages' bytes in order, each direction's run cut at ``cuts`` (positions)."""
    calls = []
    for d, data in messages:
        at = sorted({c % (len(data) + 1) for c in cuts})
        for start, end in zip([0, *at], [*at, len(data)], strict=True):
            if end > start:
                calls.append((d, data[start:end]))
    return calls


@given(st.sampled_from([("resp", RESP), ("http", HTTP), ("auto", TEXT), ("auto", RESP)]),
       st.lists(st.integers(0, 200), max_size=4), st.sets(st.integers(0, 60)))
def test_the_view_alone_shows_at_every_moment_a_prefix_of_the_masked_pcap(case, cuts, reads):
    decode, messages = case
    calls = split(messages, cuts)
    expected, leaked = masked_pcap_streams(calls, decode)
    assert leaked == 0
    view = WebSink(Capture())
    chain = Chain([view], pcap=view, decode=decode)
    assert view.unsettled is not None  # settled per batch, not per read
    chain.pair_opened(pair(), 0.0)
    for i, (d, data) in enumerate(calls):
        chain.data(1, d, data, float(i + 1))
        if i in reads:  # a reader (an API answer, the event feed) stores what is settled
            for direction in (C2S, S2C):
                shown = view_stream(view.capture, direction)
                assert shown == expected[direction][:len(shown)]
    chain.pair_closed(1, SUMMARY, 100.0)
    for d in (C2S, S2C):
        assert view_stream(view.capture, d) == expected[d]
        assert not any(s in expected[d] for s in SECRETS)


def test_an_unfinished_auth_is_kept_back_until_it_is_complete():
    auth = cmd(b"AUTH", b"hunter2-secret")
    cut = auth.index(b"hunter2") + 3
    view = WebSink(Capture())
    chain = Chain([view], pcap=view, decode="resp")
    chain.pair_opened(pair(), 0.0)
    chain.data(1, C2S, cmd(b"PING") + auth[:cut], 1.0)
    assert view_stream(view.capture, C2S) == cmd(b"PING")  # the AUTH's start waits
    assert view.kept
    chain.data(1, C2S, auth[cut:], 2.0)
    assert view_stream(view.capture, C2S) == cmd(b"PING") + auth.replace(b"hunter2-secret",
                                                                         b"*" * 14)
    assert not view.kept


@pytest.mark.parametrize("end", ["fin", "close"])
@pytest.mark.parametrize("unfinished", [b"*2\r\n$4\r\nAUTH\r\n$14\r\nhunter2-se",
                                        b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$14\r\nhunter2-se",
                                        b"AUTH hunter2-sec"])
def test_an_auth_never_finished_is_scanned_at_the_end(end, unfinished):
    calls = [(C2S, cmd(b"PING")), (S2C, b"+PONG\r\n"), (C2S, unfinished)]
    expected, leaked = masked_pcap_streams(calls, "resp")
    assert leaked == 0
    assert b"hunter2" not in expected[C2S]
    view = WebSink(Capture())
    chain = Chain([view], pcap=view, decode="resp")
    chain.pair_opened(pair(), 0.0)
    for i, (d, data) in enumerate(calls):
        chain.data(1, d, data, float(i + 1))
    assert view_stream(view.capture, C2S) == cmd(b"PING")
    if end == "fin":
        chain.half_closed(1, C2S, 10.0)
        assert view_stream(view.capture, C2S) == expected[C2S]
    chain.pair_closed(1, SUMMARY, 100.0)
    assert view_stream(view.capture, C2S) == expected[C2S]
    assert not view.kept


def test_a_password_longer_than_the_hold_back_is_stored_masked_as_it_streams():
    frame = cmd(b"AUTH", b"P" * (2 * MAX_HELD))
    view = WebSink(Capture(max_bytes=16 * MAX_HELD))
    chain = Chain([view], pcap=view, decode="resp")
    chain.pair_opened(pair(), 0.0)
    step = 64 * 1024
    for i in range(0, len(frame), step):
        chain.data(1, C2S, frame[i:i + step], 1.0)
        shown = view_stream(view.capture, C2S)
        assert b"P" * 64 not in shown
        assert sum(len(r[2]) for r in view.kept) <= MAX_HELD + step  # bounded
    chain.data(1, C2S, cmd(b"PING"), 2.0)
    chain.pair_closed(1, SUMMARY, 3.0)
    shown = view_stream(view.capture, C2S)
    assert len(shown) == len(frame) + len(cmd(b"PING"))
    assert b"P" * 64 not in shown and shown.endswith(cmd(b"PING"))
    assert shown.count(b"*" * 64) >= 2 * MAX_HELD // 64 - 64


def test_nothing_is_kept_back_for_a_connection_the_view_evicted():
    view = WebSink(Capture(max_connections=1))
    chain = Chain([view], pcap=view, decode="resp")
    chain.pair_opened(pair(1), 0.0)
    chain.pair_opened(pair(2), 0.0)  # the view keeps the last one only
    chain.data(1, C2S, cmd(b"AUTH", b"hunter2-secret")[:20], 1.0)
    view.flush()
    assert view.kept == [] and view.capture.get(1) is None


def test_beside_the_pcap_the_chain_settles_each_read_as_before():
    from playground.decode.bytetee import ByteTee

    view = WebSink(Capture())
    Chain([view], pcap=ByteTee([FakePcap(), view]), decode="resp")
    assert view.unsettled is None


class PairPcap:
    """A pcap sink's contract, per pair: the bytes it got and the masks registered."""

    def __init__(self):
        self.sent: dict = {}
        self.masks: dict = {}

    def pair_opened(self, pair, now):
        pass

    def data(self, pair_id, direction, data, now):
        self.sent.setdefault((pair_id, direction), bytearray()).extend(data)

    def mask(self, pair_id, direction, start, end):
        self.masks.setdefault((pair_id, direction), []).append((start, end))
        return max(0, min(end, len(self.sent.get((pair_id, direction), b""))) - start)

    def half_closed(self, pair_id, direction, now):
        pass

    def pair_closed(self, pair_id, summary, now):
        pass

    def shown(self, pair_id, direction=C2S) -> bytes:
        """What the file would hold: the bytes, the masked ranges as filler."""
        out = bytearray(self.sent.get((pair_id, direction), b""))
        for start, end in self.masks.get((pair_id, direction), []):
            out[start:end] = b"*" * len(out[start:end])
        return bytes(out)


PAIRS = 8
STEP = 64 * 1024


def _unfinished_passwords(chain, measure):
    """``PAIRS`` connections each send an AUTH whose password (3/4 of MAX_HELD, below the
    bound of one direction) has not ended: ``measure()`` after each read."""
    head = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n" % MAX_HELD
    for p in range(1, PAIRS + 1):
        chain.pair_opened(pair(p), 0.0)
    seen = []
    for p in range(1, PAIRS + 1):
        data = head + b"P" * (MAX_HELD * 3 // 4)
        for i in range(0, len(data), STEP):
            chain.data(p, C2S, data[i:i + STEP], 1.0)
            seen.append(measure())
    return seen


def test_what_the_pcap_hold_back_keeps_is_bounded_over_all_connections(monkeypatch):
    # each connection's hold-back was bounded (MAX_HELD), their sum was not: 100 connections
    # each holding an unfinished AUTH of 1 MB held 120 MB (10,000 connections: 12 GB)
    monkeypatch.setattr(chain_module, "MAX_HELD_ALL", 2 * MAX_HELD)
    pcap = PairPcap()
    chain = Chain([], pcap=pcap, decode="resp")
    held = _unfinished_passwords(
        chain, lambda: sum(len(st.held[C2S]) for st in chain.pairs.values()))
    assert max(held) <= 2 * MAX_HELD + STEP < PAIRS * MAX_HELD * 3 // 4
    assert chain.held_bytes == held[-1]
    assert chain.leaked == 0 and pcap.sent  # what went out was masked before it did
    for p in range(1, PAIRS + 1):
        assert b"P" * 64 not in pcap.shown(p)
    for p in range(1, PAIRS + 1):
        chain.pair_closed(p, SUMMARY, 2.0)
    assert chain.held_bytes == 0


def test_what_the_view_keeps_back_is_bounded_over_all_connections(monkeypatch):
    monkeypatch.setattr(chain_module, "MAX_HELD_ALL", 2 * MAX_HELD)
    view = WebSink(Capture(max_bytes=64 * MAX_HELD))
    chain = Chain([view], pcap=view, decode="resp")

    def kept():
        view.flush()
        return sum(len(read[2]) for read in view.kept)

    held = _unfinished_passwords(chain, kept)
    assert max(held) <= 2 * MAX_HELD + STEP < PAIRS * MAX_HELD * 3 // 4
    for p in range(1, PAIRS + 1):
        shown = b"".join(c.data for c in view.capture.stream(p) if c.direction == C2S)
        assert b"P" * 64 not in shown


def _hogs_then_a_split_auth(chain, settle):
    """Pairs 1 and 2 each hold an unfinished AUTH of 10 bytes less than MAX_HELD (the bound
    of one direction), 20 bytes short of the bound of 2 MAX_HELD over all pairs; then pair 4
    sends an ordinary AUTH in two reads, the first (22 bytes held) crossing that bound, the
    second completing its password. ``settle()`` after each read (a view's reader)."""
    head = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n" % MAX_HELD
    for p in (1, 2, 4):
        chain.pair_opened(pair(p), 0.0)
    for p in (1, 2):
        chain.data(p, C2S, head + b"P" * (MAX_HELD - 10 - len(head)), 1.0)
        settle()
    auth = cmd(b"AUTH", b"hunter2-secret")
    cut = auth.index(b"hunter2") + 3
    chain.data(4, C2S, cmd(b"PING") + auth[:cut], 2.0)
    settle()
    chain.data(4, C2S, auth[cut:], 3.0)
    settle()
    return cmd(b"PING") + auth.replace(b"hunter2-secret", b"*" * len(b"hunter2-secret"))


def test_past_the_bound_over_all_pairs_the_largest_holders_give_way_in_the_pcap(monkeypatch):
    # before, the read that crossed the bound went out masked: one client's flood of
    # unfinished AUTHs blanked pair 4's whole AUTH command (its name included) in the file
    monkeypatch.setattr(chain_module, "MAX_HELD_ALL", 2 * MAX_HELD)
    pcap = PairPcap()
    chain = Chain([], pcap=pcap, decode="resp")
    expected = _hogs_then_a_split_auth(chain, lambda: None)
    assert pcap.shown(4) == expected  # only the password masked, exactly where it was
    assert chain.held_bytes <= 2 * MAX_HELD
    assert chain.leaked == 0
    shed = [p for p in (1, 2) if (p, C2S) in pcap.sent]
    assert shed  # a hog gave way, masked
    for p in shed:
        assert b"P" * 64 not in pcap.shown(p) and b"AUTH" not in pcap.shown(p)


def test_past_the_bound_over_all_pairs_the_largest_keepers_give_way_in_the_view(monkeypatch):
    monkeypatch.setattr(chain_module, "MAX_HELD_ALL", 2 * MAX_HELD)
    view = WebSink(Capture(max_bytes=64 * MAX_HELD))
    chain = Chain([view], pcap=view, decode="resp")
    expected = _hogs_then_a_split_auth(chain, view.flush)
    shown = b"".join(c.data for c in view.capture.stream(4) if c.direction == C2S)
    assert shown == expected
    assert sum(len(read[2]) for read in view.kept) <= 2 * MAX_HELD
    for p in (1, 2):
        stored = b"".join(c.data for c in view.capture.stream(p) if c.direction == C2S)
        assert b"P" * 64 not in stored
