"""TCP reassembly: any segmentation, reordering and repetition gives the same bytes; holes are
reported, never papered over; connections are told apart and numbered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.replay.reassembly import (
    ACK,
    C2S,
    FIN,
    S2C,
    SYN,
    CaptureError,
    Gap,
    Stream,
    Tracker,
)

pytestmark = pytest.mark.pure


def _segments(data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [(a, data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


@given(data=st.binary(min_size=1, max_size=600), cuts=st.lists(st.integers(0, 600), max_size=12),
       order=st.randoms(use_true_random=False), repeats=st.lists(st.integers(0, 20), max_size=6),
       isn=st.integers(0, 2**32 - 1))
def test_any_segmentation_order_and_repetition_gives_the_same_bytes(data, cuts, order, repeats,
                                                                      isn):
    segments = _segments(data, cuts)
    segments += [segments[i % len(segments)] for i in repeats]  # retransmissions
    order.shuffle(segments)
    stream = Stream(C2S)
    stream.syn(isn)
    out = b"".join(b"".join(stream.segment(isn + 1 + off, part)) for off, part in segments)
    assert out == data
    assert stream.finish() is None


@given(data=st.binary(min_size=2, max_size=300), cut=st.integers(1, 299))
def test_overlapping_retransmission_delivers_only_the_new_part(data, cut):
    cut = cut % (len(data) - 1) + 1
    stream = Stream(C2S)
    stream.syn(0)
    first = stream.segment(1, data[:cut])
    again = stream.segment(1 + cut // 2, data[cut // 2:])  # repeats part, adds the rest
    assert b"".join(first + again) == data
    assert stream.duplicates == 1


def test_sequence_numbers_wrap():
    stream = Stream(C2S)
    stream.syn(2**32 - 3)  # first byte at 2**32 - 2
    out = stream.segment(2**32 - 2, b"abcd") + stream.segment(2, b"efgh")
    assert b"".join(out) == b"abcdefgh"


def test_a_missing_segment_is_a_gap_and_nothing_after_it_is_delivered():
    stream = Stream(C2S)
    stream.syn(99)
    assert stream.segment(100, b"one ") == [b"one "]
    assert stream.segment(108, b"three") == []  # "two " never comes
    assert stream.finish() == Gap(C2S, 4, 4, "segments after it arrived, these bytes did not")


def test_a_missing_last_segment_is_found_from_the_fin_and_from_the_acks():
    stream = Stream(S2C)
    stream.syn(0)
    stream.segment(1, b"abc")
    stream.segment(8, b"", fin=True)
    assert stream.finish().size == 4
    acked = Stream(S2C)
    acked.syn(0)
    acked.segment(1, b"abc")
    acked.ack(11)
    assert acked.finish() == Gap(S2C, 3, 7, "the peer acknowledged bytes the capture does not hold")
    fin_acked = Stream(S2C)
    fin_acked.syn(0)
    fin_acked.segment(1, b"abc")
    fin_acked.ack(5)  # the data and the (uncaptured) FIN: nothing missing
    assert fin_acked.finish() is None


def test_out_of_order_bytes_are_bounded():
    stream = Stream(C2S, max_pending=10)
    stream.syn(0)
    stream.segment(5, b"x" * 6)
    stream.segment(20, b"y" * 6)
    gap = stream.finish()
    assert gap.offset == 0 and "more than 10 bytes" in gap.reason
    assert stream.segment(1, b"abcd") == []  # the direction stopped


def _handshake(tracker, client, server, isn_c=100, isn_s=900, ts=0.0):
    tracker.packet(ts, client, server, isn_c, 0, SYN, b"")
    tracker.packet(ts, server, client, isn_s, isn_c + 1, SYN | ACK, b"")
    tracker.packet(ts, client, server, isn_c + 1, isn_s + 1, ACK, b"")


def test_connections_are_numbered_in_the_order_of_their_syn_and_split_by_direction():
    tracker = Tracker()
    a, b, server = ("127.0.0.1", 50001), ("127.0.0.1", 50002), ("127.0.0.1", 6379)
    _handshake(tracker, b, server)
    _handshake(tracker, a, server)
    tracker.packet(1.0, a, server, 101, 901, ACK, b"PING\r\n")
    tracker.packet(1.1, server, a, 901, 107, ACK, b"+PONG\r\n")
    tracker.packet(1.2, b, server, 101, 901, ACK, b"hello")
    first, second = tracker.finish()
    assert (first.number, first.client, second.client) == (1, b, a)
    assert second.stream(C2S) == b"PING\r\n" and second.stream(S2C) == b"+PONG\r\n"
    assert [c.direction for c in second.chunks] == [C2S, S2C]
    assert first.stream(C2S) == b"hello" and first.gaps == []


def test_a_syn_after_the_end_starts_a_new_connection_on_the_same_addresses():
    tracker = Tracker()
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    _handshake(tracker, c, s)
    tracker.packet(1, c, s, 101, 901, FIN | ACK, b"")
    tracker.packet(1, s, c, 901, 102, FIN | ACK, b"")
    _handshake(tracker, c, s, isn_c=7000, ts=2)
    tracker.packet(3, c, s, 7001, 901, ACK, b"again")
    first, second = tracker.finish()
    assert first.stream(C2S) == b"" and second.stream(C2S) == b"again"


def test_without_a_handshake_the_first_to_send_bytes_is_the_client():
    tracker = Tracker()
    low, high = ("10.0.0.1", 40000), ("10.0.0.2", 50000)
    tracker.packet(0, low, high, 7, 5, ACK, b"")  # a pure ACK first: the higher port for now
    tracker.packet(1, low, high, 7, 5, ACK, b"PING\r\n")
    tracker.packet(2, high, low, 5, 13, ACK, b"+PONG\r\n")
    (conn,) = tracker.finish()
    assert conn.client == low and conn.stream(C2S) == b"PING\r\n"
    assert conn.stream(S2C) == b"+PONG\r\n" and conn.gaps == []


def test_bounds_are_clear_errors():
    tracker = Tracker(max_connections=2)
    for port in (1, 2):
        _handshake(tracker, ("10.0.0.1", 40000 + port), ("10.0.0.2", 80))
    with pytest.raises(CaptureError, match="more than 2 TCP connections"):
        _handshake(tracker, ("10.0.0.1", 40003), ("10.0.0.2", 80))
    small = Tracker(max_bytes=8)
    _handshake(small, ("10.0.0.1", 1), ("10.0.0.2", 2))
    with pytest.raises(CaptureError, match="more than 8 bytes"):
        small.packet(0, ("10.0.0.1", 1), ("10.0.0.2", 2), 101, 901, ACK, b"x" * 9)


def test_a_reply_captured_before_its_request_follows_the_bytes_it_acknowledges():
    # -i any across CPUs, or two interfaces merged, can write a reply before its request; the
    # reply's ACK says which request bytes it follows, so the chunks keep that order (else the
    # first reply pairs with nothing and every later one with the request before its own)
    tracker = Tracker()
    c, s = ("127.0.0.1", 40000), ("127.0.0.1", 6379)
    _handshake(tracker, c, s)
    tracker.packet(1.0, c, s, 108, 901, ACK, b"GET b\r\n")  # out of order: waits for GET a
    tracker.packet(1.1, s, c, 901, 108, ACK, b"$1\r\n1\r\n")  # acknowledges GET a
    tracker.packet(1.2, c, s, 101, 901, ACK, b"GET a\r\n")  # a retransmission, or late
    tracker.packet(1.3, s, c, 908, 115, ACK, b"$1\r\n2\r\n")
    tracker.packet(1.4, c, s, 115, 915, ACK, b"GET c\r\n")
    tracker.packet(1.5, s, c, 915, 122, ACK, b"$1\r\n3\r\n")
    (conn,) = tracker.finish()
    assert [(c.direction, c.data) for c in conn.chunks] == [
        (C2S, b"GET a\r\n"), (C2S, b"GET b\r\n"), (S2C, b"$1\r\n1\r\n"), (S2C, b"$1\r\n2\r\n"),
        (C2S, b"GET c\r\n"), (S2C, b"$1\r\n3\r\n")]
    assert conn.gaps == []


def test_chunks_waiting_on_bytes_that_never_come_are_kept_behind_a_gap():
    tracker = Tracker()
    c, s = ("127.0.0.1", 40000), ("127.0.0.1", 6379)
    _handshake(tracker, c, s)
    tracker.packet(1.0, s, c, 901, 108, ACK, b"+PONG\r\n")  # acknowledges bytes never captured
    tracker.packet(1.1, s, c, 908, 108, ACK, b"+PONG\r\n")
    (conn,) = tracker.finish()
    assert conn.stream(S2C) == b"+PONG\r\n+PONG\r\n"
    assert [g.direction for g in conn.gaps] == [C2S]
