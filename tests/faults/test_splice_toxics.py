"""Byte toxics in the splice, with StringTransport and MemoryReactorClock: bytes held until the
clock reaches them, the FIN after delayed bytes, limit_data and reset_peer closing the pair with
the toxic named, backpressure, toxics changed on open pairs, pairs without toxics untouched, and
(hypothesis) every byte both ways then the FIN under any mix of the toxics that cut nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import error
from twisted.logger import formatEvent
from twisted.python.failure import Failure

from playground.faults.model import ToxicSet, make_toxic
from playground.proxy.splice import ClientSide, ServerSide
from tests.support.faults import Recorder, connected, lose_both

pytestmark = pytest.mark.memory


def test_latency_holds_bytes_until_the_clock_reaches_them():
    clock, factory, client, ct, server, st = connected("latency:downstream:200ms")
    client.dataReceived(b"PING\r\n")
    assert st.value() == b"PING\r\n"  # upstream has no toxic
    server.dataReceived(b"+PONG\r\n")
    assert ct.value() == b""
    clock.advance(0.199)
    assert ct.value() == b""
    clock.advance(0.001)
    assert ct.value() == b"+PONG\r\n"


def test_upstream_latency_delays_the_client_bytes():
    clock, factory, client, ct, server, st = connected("latency:upstream:50ms")
    client.dataReceived(b"PING\r\n")
    assert st.value() == b""
    clock.advance(0.05)
    assert st.value() == b"PING\r\n"


def test_fin_waits_for_the_delayed_bytes():
    clock, factory, client, ct, server, st = connected("latency:downstream:200ms")
    server.dataReceived(b"last words")
    server.readConnectionLost()
    assert ct.value() == b"" and not ct.write_closed
    clock.advance(0.2)
    assert ct.value() == b"last words" and ct.write_closed


def test_fin_waits_after_a_full_close_too():
    clock, factory, client, ct, server, st = connected("latency:downstream:100ms")
    server.dataReceived(b"bye")
    server.readConnectionLost()
    server.connectionLost(Failure(error.ConnectionDone()))
    assert not ct.disconnecting
    clock.advance(0.1)
    assert ct.value() == b"bye" and ct.disconnecting and not ct.aborted


def test_slow_close_delays_the_fin_not_the_bytes():
    clock, factory, client, ct, server, st = connected("slow_close:upstream:300ms")
    client.dataReceived(b"QUIT\r\n")
    client.readConnectionLost()
    assert st.value() == b"QUIT\r\n" and not st.write_closed
    clock.advance(0.3)
    assert st.write_closed


def test_limit_data_closes_the_pair_at_n_bytes_and_names_the_toxic(logged):
    recorder = Recorder()
    clock, factory, client, ct, server, st = connected("limit_data:downstream:5",
                                                       observer=recorder)
    server.dataReceived(b"0123456789")
    assert ct.value() == b"01234"
    assert ct.disconnecting and st.disconnecting and not ct.aborted
    lose_both(client, server)
    factory.flush_observer(everything=True)
    assert ("data", "s2c", b"01234", 0.0) in recorder.calls  # what the client got
    assert recorder.calls[-1] == ("close", "toxic limit_data_downstream", "fin")
    text = "\n".join(formatEvent(e) for e in logged)
    assert "first=toxic limit_data_downstream how=fin" in text


def test_reset_peer_resets_both_sides_after_its_time(logged):
    recorder = Recorder()
    clock, factory, client, ct, server, st = connected("reset_peer:downstream:100ms",
                                                       observer=recorder)
    server.dataReceived(b"+OK\r\n")
    assert ct.value() == b"+OK\r\n"
    clock.advance(0.099)
    assert not ct.aborted
    clock.advance(0.001)
    assert ct.aborted and st.aborted
    lose_both(client, server, error.ConnectionAborted)
    factory.flush_observer(everything=True)
    assert recorder.calls[-1] == ("close", "toxic reset_peer_downstream", "reset")
    acted = [e for e in logged if e.get("toxic") == "reset_peer_downstream"]
    assert acted[0]["pair"] == 1 and acted[0]["type"] == "reset_peer"
    assert acted[0]["stream"] == "downstream"
    assert len([e for e in acted if "acts on" in e["log_format"]]) == 1


def test_half_open_black_holes_the_direction_and_never_closes():
    clock, factory, client, ct, server, st = connected("half_open:upstream")
    client.dataReceived(b"SET k v\r\n")
    client.readConnectionLost()
    clock.advance(60)
    assert st.value() == b"" and not st.write_closed and not st.disconnecting
    server.dataReceived(b"+OK\r\n")
    assert ct.value() == b"+OK\r\n"


def test_timeout_drops_then_closes():
    clock, factory, client, ct, server, st = connected("timeout:downstream:1s")
    server.dataReceived(b"lost")
    clock.advance(0.5)
    assert ct.value() == b"" and not ct.disconnecting
    clock.advance(0.5)
    assert ct.disconnecting and st.disconnecting


def test_a_reader_is_paused_while_its_toxics_hold_too_much():
    toxics = ToxicSet()
    clock, factory, client, ct, server, st = connected(toxics=toxics)
    factory.toxic_max_held = 2048  # read when a pair's pipeline is made
    toxics.add(make_toxic("bandwidth", attributes={"rate": 1}))  # 1 KB/s
    server.dataReceived(b"x" * 4096)
    assert st.producerState == "paused"
    clock.advance(1.9)
    assert st.producerState == "paused"
    clock.advance(1.3)  # about 3.2 KB out, less than 1 KB held: below half the bound
    assert 3000 < len(ct.value()) < 3400
    assert st.producerState == "producing"
    clock.advance(1)
    assert ct.value() == b"x" * 4096


def test_toxics_added_and_removed_apply_to_open_pairs():
    toxics = ToxicSet()
    clock, factory, client, ct, server, st = connected(toxics=toxics)
    assert type(server) is ServerSide and type(client) is ClientSide  # no toxic: plain sides
    toxics.add(make_toxic("latency", attributes={"latency": 100}))
    server.dataReceived(b"slow")
    assert ct.value() == b""
    toxics.remove("latency_downstream")
    server.dataReceived(b"fast")
    clock.advance(0.1)
    assert ct.value() == b"slowfast"  # order kept
    assert type(server) is ServerSide  # nothing held, no toxic left: the plain side again
    server.dataReceived(b"now")
    assert ct.value() == b"slowfastnow"
    toxics.add(make_toxic("limit_data", attributes={"bytes": 2}))
    server.dataReceived(b"abc")
    assert ct.value() == b"slowfastnowab" and ct.disconnecting


def test_removing_a_latency_toxic_releases_what_it_held_at_once():
    toxics = ToxicSet()
    clock, factory, client, ct, server, st = connected(toxics=toxics)
    toxics.add(make_toxic("latency", attributes={"latency": 4000}))
    server.dataReceived(b"+PONG\r\n")
    clock.advance(0.5)
    assert ct.value() == b""
    toxics.remove("latency_downstream")
    clock.advance(0)
    assert ct.value() == b"+PONG\r\n"  # not 3.5 s later
    assert type(server) is ServerSide  # nothing held, no toxic left: the plain side again


def test_reset_peer_added_to_an_open_pair_resets_it_on_the_next_turn():
    toxics = ToxicSet()
    clock, factory, client, ct, server, st = connected(toxics=toxics)
    toxics.add(make_toxic("reset_peer", stream="upstream"))
    clock.advance(0)
    assert ct.aborted and st.aborted


def test_toxicity_zero_leaves_the_pair_alone(logged):
    clock, factory, client, ct, server, st = connected("latency:downstream:1s,toxicity=0")
    assert type(server) is ServerSide
    server.dataReceived(b"x")
    assert ct.value() == b"x"
    assert not [e for e in logged if "toxic" in e]


def test_the_observer_sees_the_bytes_when_the_client_gets_them():
    recorder = Recorder()
    clock, factory, client, ct, server, st = connected("latency:downstream:200ms",
                                                       observer=recorder)
    server.dataReceived(b"+PONG\r\n")
    clock.advance(0.2)
    factory.flush_observer(everything=True)
    assert ("data", "s2c", b"+PONG\r\n", 0.2) in recorder.calls


def test_drain_aborts_pairs_a_toxic_holds_open():
    clock, factory, client, ct, server, st = connected("timeout:downstream")
    d = factory.drain(1.0)
    clock.advance(1.0)
    assert ct.aborted and st.aborted
    lose_both(client, server, error.ConnectionAborted)
    assert d.called


_NON_CUTTING = st.sampled_from([
    "latency:{s}:{n}ms,jitter={j}ms", "bandwidth:{s}:{n}", "slicer:{s}:{n},delay={j}us",
    "slow_close:{s}:{n}ms"])


@st.composite
def fault_specs(draw):
    specs = []
    for i in range(draw(st.integers(0, 4))):
        spec = draw(_NON_CUTTING).format(s=draw(st.sampled_from(["upstream", "downstream"])),
                                         n=draw(st.integers(1, 300)), j=draw(st.integers(0, 50)))
        specs.append(f"{spec},name=t{i}")
    return specs


@settings(max_examples=60)
@given(fault_specs(),
       st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=300),
                          st.floats(0, 0.3)), max_size=10),
       st.booleans())
def test_without_cutting_toxics_both_ways_get_every_byte_then_the_fin(specs, steps, client_first):
    clock, factory, client, ct, server, st_ = connected(*specs)
    sent = {True: b"", False: b""}
    for from_client, data, gap in steps:
        (client if from_client else server).dataReceived(data)
        sent[from_client] += data
        clock.advance(gap)
    for side in ((client, server) if client_first else (server, client)):
        side.readConnectionLost()
    for _ in range(10_000):
        if not clock.getDelayedCalls():
            break
        clock.advance(max(0.0, min(c.getTime() for c in clock.getDelayedCalls()) - clock.seconds()))
    assert st_.value() == sent[True] and ct.value() == sent[False]
    assert st_.write_closed and ct.write_closed
    assert st_.disconnecting and ct.disconnecting


def test_a_full_close_without_a_half_close_first_still_waits_for_the_held_bytes():
    clock, factory, client, ct, server, st = connected("latency:downstream:100ms")
    server.dataReceived(b"bye")
    server.connectionLost(Failure(error.ConnectionDone()))  # no readConnectionLost before it
    assert ct.value() == b"" and not ct.disconnecting
    clock.advance(0.1)
    assert ct.value() == b"bye" and ct.disconnecting and not ct.aborted


def test_idle_timeout_still_ends_a_pair_a_toxic_holds_open():
    clock, factory, client, ct, server, st = connected("timeout:downstream", idle=1.0)
    server.dataReceived(b"dropped")
    for _ in range(4):
        clock.advance(0.25)
    assert not ct.aborted
    clock.advance(0.25)  # idle for between 1x and 1.25x the timeout
    assert ct.aborted and st.aborted
