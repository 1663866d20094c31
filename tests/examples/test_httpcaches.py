"""What the HTTP responder computes once and reuses: the JSON encoder, an endpoint's header
fields, the Date header (once per second), and the access-log event (the one ``log.info``
would emit). Each must answer exactly what building it afresh would."""

from __future__ import annotations

import json

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, LogLevel, formatEvent

from playground.examples.http import server as httpserver
from playground.examples.http.app import Response, _dumps
from playground.examples.http.parser import http_date

PEER = IPv4Address("TCP", "127.0.0.1", 40001)
GET = b"GET /get?a=1 HTTP/1.1\r\nHost: test\r\n\r\n"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def connect(factory):
    proto = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    proto.makeConnection(transport)
    return proto, transport


def parse(data: bytes) -> list[h11.Response]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    out = []
    while (event := client.next_event()) is not h11.NEED_DATA:
        if isinstance(event, h11.Response):
            out.append(event)
        elif isinstance(event, h11.EndOfMessage):
            client.start_next_cycle()
            client.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
            client.send(h11.EndOfMessage())
    return out


@pytest.mark.pure
@given(json_values)
def test_dumps_is_the_json_encoders_text(value):
    assert _dumps(value) == json.JSONEncoder(ensure_ascii=False).encode(value)


@pytest.mark.pure
def test_dumps_refuses_what_json_refuses():
    with pytest.raises(TypeError, match="bytes is not JSON serializable"):
        _dumps({"a": b"x"})


@pytest.mark.memory
def test_date_header_changes_with_the_second():
    clock = MemoryReactorClock()
    clock.advance(784111777)
    proto, t = connect(httpserver.HttpFactory(clock, access_log=False))
    dates = []
    for step in (0, 0.5, 0.49, 0.02, 3):
        clock.advance(step)
        proto.dataReceived(GET)
        (response,) = parse(t.value())
        t.clear()
        dates.append(dict(response.headers)[b"date"].decode())
    assert dates == [http_date(784111777), http_date(784111777), http_date(784111777),
                     http_date(784111778), http_date(784111781)]
    assert dates[-1] == "Sun, 06 Nov 1994 08:49:41 GMT"


@pytest.mark.memory
def test_header_fields_formatted_once_answer_as_built_afresh():
    """Responses with more distinct header sets than are kept still carry their own fields."""
    clock = MemoryReactorClock()
    factory = httpserver.HttpFactory(clock, access_log=False)
    proto, t = connect(factory)
    httpserver._HEADER_BLOCKS.clear()
    answers = [Response(200, (("X-Id", str(i)), ("Content-Length", "2")), b"ok")
               for i in range(300)] + [Response(201, (("X-Id", "0"),), b"abc")]
    answers.append(answers[0])
    proto.app.respond = lambda head, body, client: answers.pop(0)
    seen = []
    for _ in range(302):
        proto.dataReceived(GET)
        (response,) = parse(t.value())
        t.clear()
        seen.append((response.status_code, dict(response.headers)))
    assert len(httpserver._HEADER_BLOCKS) == 256
    assert [h[b"x-id"] for _, h in seen] == [str(i).encode() for i in range(300)] + [b"0", b"0"]
    assert all(h[b"content-length"] == b"2" for _, h in seen[:300])  # not added a second time
    assert seen[300] == (201, {**seen[300][1], b"content-length": b"3"})
    assert seen[301][0] == 200


@pytest.mark.memory
def test_access_log_event_is_what_log_info_emits():
    events = []
    proto, _ = connect(httpserver.HttpFactory(MemoryReactorClock()))
    proto._access_log = Logger(namespace=httpserver.HttpProtocol.log.namespace,
                               observer=events.append)
    proto.dataReceived(GET)
    (event,) = events
    expected = []
    Logger(namespace=event["log_namespace"], observer=expected.append).info(
        event["log_format"], **{k: v for k, v in event.items() if not k.startswith("log_")})
    (expected,) = expected
    assert event.keys() == expected.keys()
    assert {k: v for k, v in event.items() if k not in ("log_time", "log_logger")} == {
        k: v for k, v in expected.items() if k not in ("log_time", "log_logger")}
    assert event["log_level"] is LogLevel.info and abs(event["log_time"] - expected["log_time"]) < 5
    assert formatEvent(event).startswith("127.0.0.1:40001 GET /get?a=1 HTTP/1.1 200 ")
