"""The close action in memory: ``ProxyFactory.close_pair`` / ``Pair.close`` on a spliced pair of
fake transports, and the ``POST /api/connections/{id}/close`` route of ``WebRoot`` with a fake
proxy (``close``), headers and bodies checked before anything is closed."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from playground.proxy.splice import ProxyFactory
from playground.web.capture import Capture
from playground.web.site import WebRoot
from tests.support.splice import Endpoint, Transport

pytestmark = pytest.mark.memory


def connected():
    clock = MemoryReactorClock()
    endpoint = Endpoint()
    factory = ProxyFactory(endpoint, reactor=clock)
    client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    ct = Transport()
    client.makeConnection(ct)
    server, st = endpoint.succeed()
    return factory, client, ct, server, st


def test_fin_loses_both_sides_after_unregistering_their_producers():
    factory, client, ct, server, st = connected()
    pair = client.pair
    assert factory.close_pair(pair.id, "fin", by="web view")
    assert ct.disconnecting and st.disconnecting and not (ct.aborted or st.aborted)
    assert ct.producer is None and st.producer is None  # a paused one would hold the FIN back
    client.connectionLost(Failure(error.ConnectionDone()))
    server.connectionLost(Failure(error.ConnectionDone()))
    assert pair.finished and pair.id not in factory.pairs
    assert pair.closed_first == ("web view", "fin")
    assert not factory.close_pair(pair.id, "fin", by="web view")  # closed: nothing to close


def test_rst_aborts_both_sides_and_is_recorded_as_a_reset():
    factory, client, ct, server, st = connected()
    pair = client.pair
    assert factory.close_pair(pair.id, "rst", by="web view")
    assert ct.aborted and st.aborted
    client.connectionLost(Failure(error.ConnectionAborted()))
    server.connectionLost(Failure(error.ConnectionAborted()))
    assert pair.finished and pair.closed_first == ("web view", "reset")


def test_a_pair_still_connecting_closes_its_client_and_unknown_ids_are_false():
    clock = MemoryReactorClock()
    endpoint = Endpoint()
    factory = ProxyFactory(endpoint, reactor=clock)
    client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    ct = Transport()
    client.makeConnection(ct)
    assert factory.close_pair(client.pair.id, "rst", by="web view") and ct.aborted
    assert not factory.close_pair(999, "fin", by="web view")
    with pytest.raises(ValueError):
        client.pair.close("kill", by="web view")


def post(root: WebRoot, path: bytes, body: bytes | None, headers: dict, method=b"POST"):
    request = DummyRequest(path.split(b"/"))
    request.method = method
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name, [value])
    if body is not None:
        request.content = BytesIO(body)
    answer = root.render(request)
    return request.responseCode or 200, json.loads(answer)


def test_the_close_route_checks_method_header_origin_body_then_asks_the_proxy():
    asked = []

    def close(pair, how):
        asked.append((pair, how))
        return pair == 3

    root = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={}, close=close)
    good = {b"x-tcpplay-action": b"close", b"host": b"127.0.0.1:8478"}
    path = b"api/connections/3/close"
    assert post(root, path, b'{"how": "rst"}', good) == (
        202, {"id": 3, "how": "rst", "closing": True})
    assert post(root, path, b'{"how": "rst"}', good, method=b"GET")[0] == 405
    assert post(root, path, b'{"how": "rst"}', {b"host": b"127.0.0.1:8478"})[0] == 403
    for origin in (b"http://evil.example", b"null", b"http://127.0.0.1:8479"):
        assert post(root, path, b'{"how": "rst"}', {**good, b"origin": origin})[0] == 403
    assert post(root, path, b'{"how": "fin"}',
                {**good, b"origin": b"http://127.0.0.1:8478"})[0] == 202
    for body in (b'{"how": "FIN"}', b"{", b"3", b'{"how": "fin"' + b" " * 2000 + b"}"):
        assert post(root, path, body, good)[0] == 400
    assert post(root, b"api/connections/4/close", b'{"how": "fin"}', good)[0] == 404
    assert asked == [(3, "rst"), (3, "fin"), (4, "fin")]  # only well-formed requests got there
    no_proxy = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={})
    assert post(no_proxy, path, b'{"how": "fin"}', good)[0] == 404
