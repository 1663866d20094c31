"""playground.web.export: one stored connection as a pcap and as JSON lines (pure)."""

from __future__ import annotations

import json
import struct

import pytest

from playground.web.capture import C2S, CHUNK_COST, S2C, Capture
from playground.web.export import endpoint, evicted_ranges
from playground.web.sink import rows
from tests.support.webexport import connection_jsonl, connection_pcap

pytestmark = pytest.mark.pure


def records(pcap: bytes) -> list[bytes]:
    """The packets of a classic little-endian pcap."""
    assert struct.unpack("<I", pcap[:4])[0] == 0xA1B2C3D4
    out, at = [], 24
    while at < len(pcap):
        length = struct.unpack("<I", pcap[at + 8:at + 12])[0]
        out.append(pcap[at + 16:at + 16 + length])
        at += 16 + length
    assert at == len(pcap)
    return out


def stored(max_bytes: int = 1 << 20) -> Capture:
    capture = Capture(max_bytes=max_bytes)
    capture.opened(3, 10.0, "127.0.0.1:50000", "127.0.0.1:6479", "tcp:127.0.0.1:6379",
                   "127.0.0.1:6379")
    capture.data(3, C2S, b"A" * 300, 10.1)
    capture.data(3, S2C, b"B" * 10, 10.2)
    capture.data(3, C2S, b"secret-tail", 10.3)
    capture.mask(3, C2S, 300, 306)
    capture.half_closed(3, C2S, 10.4)
    capture.closed(3, 10.5, closed_by="client", how="fin")
    return capture


def test_addresses_as_logs_write_them_become_endpoints_again():
    assert (endpoint("127.0.0.1:6379").host, endpoint("127.0.0.1:6379").port) == (
        "127.0.0.1", 6379)
    assert (endpoint("[::1]:6379").host, endpoint("[::1]:6379").port) == ("::1", 6379)
    assert endpoint("unix:/tmp/s").port == 0 and endpoint("") is None


def test_the_pcap_holds_the_stored_bytes_masked_with_handshake_and_fins():
    capture = stored()
    c = capture.get(3)
    packets = records(connection_pcap(c, capture.stream(3)))
    joined = b"".join(packets)
    assert b"A" * 300 in joined and b"B" * 10 in joined
    assert b"******-tail" in joined and b"secret" not in joined
    assert len(packets) >= 3 + 2 + 2 + 2  # handshake, data and ACKs, FINs
    assert evicted_ranges(c) == ""


def test_evicted_bytes_are_named_and_the_pcap_starts_where_the_capture_has_them():
    capture = stored(max_bytes=4 * CHUNK_COST + 30)  # all but the first chunk
    c = capture.get(3)
    assert c.stream_evicted[C2S] == 300
    assert evicted_ranges(c) == "c2s 0-299"
    joined = b"".join(records(connection_pcap(c, capture.stream(3))))
    assert b"A" * 300 not in joined
    assert b"******-tail" in joined


def test_the_json_lines_are_open_exchanges_and_close():
    capture = stored()
    capture.add_exchanges(3, 10.2, "redis", ((b"get", b"k"), "$v", 0.001), 1, 0, 8)
    lines = connection_jsonl(capture.get(3), rows).decode().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["type"] for r in recs] == ["open", "redis", "close"]
    assert recs[0]["client"] == "127.0.0.1:50000" and recs[0]["server"] == "127.0.0.1:6379"
    assert (recs[1]["request"], recs[1]["reply"], recs[1]["latency"]) == ("get k", "$v", 0.001)
    assert recs[2]["bytes_c2s"] == 311 and recs[2]["how"] == "fin"
    assert all(r["pair"] == 3 for r in recs)


def test_an_open_connection_has_no_close_line():
    capture = Capture()
    capture.opened(1, 1.0, "127.0.0.1:1", "127.0.0.1:2", "tcp:x:3")
    assert [json.loads(x)["type"] for x in connection_jsonl(capture.get(1), rows).split()] == [
        "open"]
