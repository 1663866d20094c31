"""The web view stays live although its sink stores in batches: what the chain handed the sink
and the sink still queues is in every API answer and in the event feed's next message; and a
feed's tick makes that message once for the pages at one point."""

from __future__ import annotations

import base64
import json

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from playground.decode.chain import Chain
from playground.web.capture import Capture
from playground.web.sink import WebSink
from playground.web.site import EventFeed, WebRoot
from tests.support.chain import pair

pytestmark = pytest.mark.memory

C2S, S2C = "c2s", "s2c"
SET_FOO = b"*3\r\n$3\r\nset\r\n$3\r\nfoo\r\n$3\r\nbar\r\n"


class _EventRequest(DummyRequest):
    """A request that takes the feed's client as its producer (``DummyRequest`` would pull
    from a streaming producer until it is unregistered)."""

    channel = None  # no connection under it

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None


def _queued() -> tuple[WebSink, Chain]:
    """A sink the chain handed one exchange of an open connection, all of it still queued."""
    web = WebSink(Capture())
    chain = Chain([web], pcap=web)
    chain.pair_opened(pair(), 100.0)
    chain.data(1, C2S, SET_FOO, 100.1)
    chain.data(1, S2C, b"+OK\r\n", 100.2)
    return web, chain


def _get(root: WebRoot, *path: str) -> dict:
    request = DummyRequest([p.encode() for p in path])
    answer = json.loads(root.render(request))
    assert (request.responseCode or 200) == 200, answer
    return answer


def test_every_answer_includes_what_the_sink_still_queues():
    web, _ = _queued()
    assert web.records and web.reads  # queued: the store itself has none of it yet
    assert web.capture.connections[1].bytes_c2s == 0
    clock = MemoryReactorClock()
    clock.advance(101.0)
    root = WebRoot(web.capture, reactor=clock, assets={}, latency=web.latency,
                   describe=web.rows)
    (row,) = _get(root, "api", "connections")["connections"]
    assert (row["bytes_c2s"], row["bytes_s2c"], row["exchanges"]) == (len(SET_FOO), 5, 1)
    (exchange,) = _get(root, "api", "connections", "1")["exchanges"]
    assert (exchange["request"], exchange["reply"]) == ('set foo "bar"', "+OK")
    chunks = _get(root, "api", "connections", "1", "stream")["chunks"]
    assert [base64.b64decode(c["base64"]) for c in chunks] == [SET_FOO, b"+OK\r\n"]


def test_the_pictures_include_what_the_sink_still_queues():
    web, _ = _queued()
    assert web.records
    root = WebRoot(web.capture, reactor=MemoryReactorClock(), assets={}, latency=web.latency)
    (row,) = _get(root, "api", "latency")["commands"]
    assert (row["name"], row["count"]) == ("SET", 1)


def test_the_event_feed_sends_what_the_sink_still_queues():
    web, chain = _queued()
    web.capture.sync()  # the first exchange stored (the protocol detected): a page subscribes
    clock = MemoryReactorClock()
    feed = EventFeed(web.capture, clock, interval=0.2)
    request = _EventRequest([b"api", b"events"])
    feed.add(request, web.capture.seq)  # the page is up to date: an empty first message
    (first,) = request.written
    assert json.loads(first.split(b"data: ", 1)[1])["connections"] == []
    request.written.clear()
    chain.data(1, C2S, SET_FOO, 100.3)  # a second exchange, queued
    chain.data(1, S2C, b"+OK\r\n", 100.4)
    assert web.reads and web.capture.connections[1].exchange_count == 1
    clock.advance(0.2)  # the feed's tick
    (message,) = request.written
    (row,) = json.loads(message.split(b"data: ", 1)[1])["connections"]
    assert (row["exchanges"], row["bytes_c2s"], row["bytes_s2c"]) == (2, 2 * len(SET_FOO), 10)
    feed.stop()


class _CountingCapture(Capture):
    """A capture that counts the change lists it is asked for."""

    asked = 0

    def changes(self, since, now, limit=0):
        self.asked += 1
        return super().changes(since, now, limit)


def test_a_tick_makes_one_message_for_the_clients_at_one_point():
    # each of 32 pages had its own 1000 rows made and dumped to JSON every tick: 113 ms a
    # tick for what is one message; pages that keep up are all at the same seq
    capture = _CountingCapture()
    for pair_id in range(1, 101):
        capture.opened(pair_id, 1.0, "127.0.0.1:40000", "127.0.0.1:6479", "tcp:x:6379")
    clock = MemoryReactorClock()
    feed = EventFeed(capture, clock, interval=0.2)
    pages = [_EventRequest([b"api", b"events"]) for _ in range(32)]
    for page in pages:
        feed.add(page, 50)  # what they missed, each at once: they are then all at one seq
    for pair_id in range(1, 101):
        capture.detected(pair_id, "resp")
    capture.asked = 0
    clock.advance(0.2)
    assert capture.asked == 1
    (message,) = {page.written[-1] for page in pages}
    rows = json.loads(message.split(b"data: ", 1)[1])["connections"]
    assert [(row["id"], row["protocol"]) for row in rows] == [(i, "resp") for i in range(1, 101)]
    feed.stop()
