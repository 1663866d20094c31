"""The ``down`` toxic on the proxy service, with MemoryReactorClock: the listening port closes
``after`` ms and opens again on the same address when the toxic goes (by itself after
``duration``); open pairs are left alone."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from playground.common.listening import ListeningService
from playground.faults.model import ToxicSet, make_toxic
from playground.proxy.service import ProxyService
from playground.proxy.splice import ProxyFactory
from tests.support.splice import Endpoint

pytestmark = pytest.mark.memory


def service(*toxics):
    clock = MemoryReactorClock()
    toxic_set = ToxicSet(toxics)
    factory = ProxyFactory(Endpoint(), reactor=clock, toxics=toxic_set)
    listening = ListeningService("proxy", "tcp:7001:interface=127.0.0.1", factory, reactor=clock)
    svc = ProxyService(listening, factory, 1.0)
    svc.startService()
    return clock, toxic_set, listening, svc


def test_down_for_a_duration_then_up_on_the_same_address():
    clock, toxics, listening, svc = service(make_toxic("down", attributes={"after": 100,
                                                                          "duration": 500}))
    assert listening.port is not None
    clock.advance(0.1)
    assert listening.port is None and len(clock.tcpServers) == 1
    clock.advance(0.499)
    assert listening.port is None
    clock.advance(0.001)
    assert listening.port is not None and len(toxics) == 0
    assert len(clock.tcpServers) == 2 and clock.tcpServers[-1][0] == 7001


def test_down_until_removed():
    clock, toxics, listening, svc = service()
    toxics.add(make_toxic("down"))
    clock.advance(0)
    assert listening.port is None
    clock.advance(3600)
    assert listening.port is None
    toxics.remove("down_downstream")
    assert listening.port is not None


def test_two_downs_up_only_when_both_are_gone():
    clock, toxics, listening, svc = service()
    toxics.add(make_toxic("down"))
    toxics.add(make_toxic("down", name="also"))
    clock.advance(0)
    toxics.remove("down_downstream")
    assert listening.port is None
    toxics.remove("also")
    assert listening.port is not None


def test_stopping_the_service_cancels_a_pending_down():
    clock, toxics, listening, svc = service(make_toxic("down", attributes={"after": 1000}))
    svc.stopService()
    assert not clock.getDelayedCalls()


def texts(events) -> list[str]:
    from twisted.logger import formatEvent

    return [formatEvent(e) for e in events]


def test_down_and_up_are_said_once_true(logged):
    """"proxy down" once the socket is closed (Port.stopListening's Deferred fires a turn later:
    a client acting on an earlier line was accepted, then reset); "up again" once listening."""
    from twisted.internet import defer

    clock, toxics, listening, svc = service()
    closed = defer.Deferred()
    listening.port.stopListening = lambda: closed
    toxics.add(make_toxic("down"))
    clock.advance(0)
    assert listening.port is None
    assert not [t for t in texts(logged) if "proxy down" in t]
    closed.callback(None)
    assert [t for t in texts(logged) if "proxy down" in t] == [
        "proxy down (toxic down_downstream): not listening, new clients are refused"]
    toxics.remove("down_downstream")
    said = [t for t in texts(logged) if "listening on" in t or "up again" in t]
    assert said[-2].startswith("proxy listening on ")  # (the fake port's address)
    assert said[-1] == "proxy up again (toxic down_downstream gone)"
