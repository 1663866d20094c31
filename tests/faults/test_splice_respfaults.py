"""RESP-aware faults in the splice, with StringTransport and MemoryReactorClock: an injected
error reaches the client in reply order and never the server, a delayed reply waits for the
clock, reset at the Nth match names the toxic, the observer sees the exchange the client had,
one log line per fault acting, and pairs without a resp toxic keep their plain classes."""

from __future__ import annotations

import pytest
from twisted.internet import error
from twisted.logger import formatEvent

from playground.faults.model import ToxicSet, parse_fault
from playground.proxy.splice import (
    DirectServerSide,
    FaultedServerSide,
    ObservedFaultedClientSide,
    ServerSide,
)
from tests.support.faults import Recorder, connected, lose_both

pytestmark = pytest.mark.memory


def cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def test_error_is_injected_in_order_and_the_server_never_sees_the_command(logged):
    clock, factory, client, ct, server, st = connected("resp:GET user:*:error=-LOADING")
    assert type(server) is FaultedServerSide
    client.dataReceived(cmd(b"SET", b"a", b"1") + cmd(b"GET", b"user:1") + cmd(b"GET", b"a"))
    assert st.value() == cmd(b"SET", b"a", b"1") + cmd(b"GET", b"a")
    server.dataReceived(b"+OK\r\n$1\r\n1\r\n")
    assert ct.value() == b"+OK\r\n-LOADING\r\n$1\r\n1\r\n"
    text = "\n".join(formatEvent(e) for e in logged)
    assert "fault resp_downstream injected -LOADING for GET user:1 on pair 1" in text


def test_delay_holds_the_reply_until_the_clock_reaches_it():
    clock, factory, client, ct, server, st = connected("resp:GET:delay=200ms")
    client.dataReceived(cmd(b"GET", b"a"))
    server.dataReceived(b"$1\r\n1\r\n")
    clock.advance(0.199)
    assert ct.value() == b""
    clock.advance(0.001)
    assert ct.value() == b"$1\r\n1\r\n"


def test_server_fin_waits_for_the_delayed_reply():
    clock, factory, client, ct, server, st = connected("resp:GET:delay=200ms")
    client.dataReceived(cmd(b"GET", b"a"))
    server.dataReceived(b"$1\r\n1\r\n")
    server.readConnectionLost()
    assert not ct.write_closed
    clock.advance(0.2)
    assert ct.value() == b"$1\r\n1\r\n" and ct.write_closed


def test_reset_at_the_third_set_names_the_toxic():
    recorder = Recorder()
    clock, factory, client, ct, server, st = connected("resp:SET:reset,nth=3",
                                                       observer=recorder)
    client.dataReceived(cmd(b"SET", b"a", b"1") * 2)
    assert not ct.aborted
    client.dataReceived(cmd(b"SET", b"a", b"1"))
    assert ct.aborted and st.aborted
    assert st.value() == cmd(b"SET", b"a", b"1") * 2
    lose_both(client, server, error.ConnectionAborted)
    factory.flush_observer(everything=True)
    assert recorder.calls[-1] == ("close", "toxic resp_downstream", "reset")


def test_the_observer_sees_what_the_client_sent_and_received():
    recorder = Recorder()
    clock, factory, client, ct, server, st = connected("resp:GET:error=-LOADING",
                                                       observer=recorder)
    assert type(client) is ObservedFaultedClientSide
    client.dataReceived(cmd(b"GET", b"k"))
    factory.flush_observer(everything=True)
    data = [c[1:3] for c in recorder.calls if c[0] == "data"]
    assert data == [("c2s", cmd(b"GET", b"k")), ("s2c", b"-LOADING\r\n")]
    assert st.value() == b""


def test_a_pair_without_resp_toxics_keeps_its_classes():
    clock, factory, client, ct, server, st = connected(toxics=ToxicSet())
    assert type(server) in (ServerSide, DirectServerSide)


def test_a_changed_resp_toxic_reaches_open_pairs():
    toxics = ToxicSet([parse_fault("resp:GET:error=-LOADING")])
    clock, factory, client, ct, server, st = connected(toxics=toxics)
    toxics.update("resp_downstream", attributes={"error": "-BUSY"})
    client.dataReceived(cmd(b"GET", b"k"))
    assert ct.value() == b"-BUSY\r\n"
    toxics.remove("resp_downstream")
    client.dataReceived(cmd(b"GET", b"k"))
    assert st.value() == cmd(b"GET", b"k")


def test_byte_toxics_stand_aside_on_a_pair_with_resp_faults(logged):
    clock, factory, client, ct, server, st = connected("resp:GET:error=-X",
                                                       "latency:downstream:1s")
    assert type(server) is FaultedServerSide
    client.dataReceived(cmd(b"PING"))
    server.dataReceived(b"+PONG\r\n")
    assert ct.value() == b"+PONG\r\n"  # no latency
    text = "\n".join(formatEvent(e) for e in logged)
    assert "toxic latency_downstream (latency) does not act on this pair: it has resp faults" in text
