"""Driving the decoder chain without a proxy: a list sink, a fake pcap sink, a pair's description,
a closing summary, the console and JSON renderings of what a sink received, and the byte streams
the pcap's hold-back and the web view give of pair 1."""

from __future__ import annotations

import json

from playground.decode.chain import Chain
from playground.decode.records import to_json
from playground.proxy.observer import Endpoint, PairInfo
from playground.sinks.console import ConsoleFormatter

C2S, S2C = "c2s", "s2c"
SUMMARY = {"bytes_c2s": 1, "bytes_s2c": 2, "duration": 0.5, "closed_by": "client", "how": "fin"}


class ListSink:
    def __init__(self):
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def of(self, kind):
        return [r for r in self.records if isinstance(r, kind)]


class FakePcap:
    """Records what the chain passes on: data per direction and masks."""

    def __init__(self):
        self.data_calls = []
        self.masks = []
        self.written = {C2S: 0, S2C: 0}
        self.events = []

    def pair_opened(self, pair, now):
        self.events.append("open")

    def data(self, pair_id, direction, data, now):
        self.data_calls.append((direction, bytes(data)))
        self.written[direction] += len(data)

    def mask(self, pair_id, direction, start, end):
        self.masks.append((direction, start, end))
        return max(0, min(end, self.written[direction]) - start)

    def half_closed(self, pair_id, direction, now):
        self.events.append(("half", direction))

    def pair_closed(self, pair_id, summary, now):
        self.events.append("close")

    def stream(self, direction):
        return b"".join(d for dr, d in self.data_calls if dr == direction)

    def masked(self, direction, filler=b"*"):
        """``direction``'s bytes as a pcap file holds them: each mask's range filled."""
        data = bytearray(self.stream(direction))
        for d, start, end in self.masks:
            if d == direction:
                data[start:end] = filler * (end - start)
        return bytes(data)


def pair(pid=1):
    return PairInfo(
        pid,
        Endpoint("127.0.0.1", 51234),
        Endpoint("127.0.0.1", 6479),
        "tcp:host=127.0.0.1:port=6379",
        Endpoint("127.0.0.1", 6379),
    )


def rendered(sink, max_value=200):
    f = ConsoleFormatter(False, max_value)
    text = "\n".join(line for r in sink.records for line in f.lines(r))
    js = "\n".join(json.dumps(to_json(r, max_value)) for r in sink.records)
    return text, js


# an HTTP request and answer carrying every kind of credential header
GET = (
    b"GET /api/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cr3t-token\r\n"
    b"Cookie: sid=s3cr3t-cookie\r\n\r\n"
)
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: sid=s3cr3t-set\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


def masked_pcap_streams(calls, decode, before=None) -> tuple[dict, int]:
    """What the pcap's per-read hold-back gives of pair 1 for ``calls`` (``(direction, data)``,
    then the close), masks applied: direction -> bytes, and the bytes the chain counted as
    leaked (released before their mask). ``before(i, chain)``: called before call ``i``."""
    pcap = FakePcap()
    chain = Chain([ListSink()], pcap=pcap, decode=decode)
    chain.pair_opened(pair(), 0.0)
    for i, (d, data) in enumerate(calls):
        if before is not None:
            before(i, chain)
        chain.data(1, d, data, float(i + 1))
    chain.pair_closed(1, SUMMARY, 100.0)
    return {d: pcap.masked(d) for d in (C2S, S2C)}, chain.leaked


def view_stream(capture, direction: str = C2S) -> bytes:
    """The bytes of pair 1's ``direction`` a web view's ``Capture`` serves."""
    return b"".join(c.data for c in capture.stream(1) if c.direction == direction)
