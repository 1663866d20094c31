"""Reading capture files: classic pcap and pcapng built by hand, tcpplay's own --pcap output, and
damaged files (a clear CaptureError, never another exception)."""

from __future__ import annotations

import io
import os
import struct

import dpkt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.proxy.observer import Endpoint, PairInfo
from playground.replay.capture import MAX_RECORD, read_capture, read_pcap
from playground.replay.reassembly import C2S, S2C, CaptureError, Tracker
from playground.sinks.pcapwriter import PcapWriter
from tests.support.pcaps import CLIENT, SERVER, Conversation, write_pcap

pytestmark = pytest.mark.pure

PING, PONG = b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


def _session() -> tuple[list[bytes], Conversation]:
    conv = Conversation()
    frames = conv.handshake()
    frames += [conv.data(True, PING), conv.data(False, PONG),
               conv.data(True, GET[:9]), conv.data(True, GET[9:]), conv.data(False, b"$1\r\nv\r\n"),
               conv.fin(True), conv.fin(False)]
    return frames, conv


@pytest.mark.parametrize("pcapng", [False, True])
def test_a_hand_built_capture_reads_back_as_one_connection(tmp_path, pcapng):
    frames, _ = _session()
    path = tmp_path / "s.pcap"
    write_pcap(path, frames, pcapng=pcapng)
    capture = read_capture(str(path))
    assert capture.kind == ("pcapng" if pcapng else "pcap")
    (conn,) = capture.connections
    assert (conn.client, conn.server, conn.gaps) == (CLIENT, SERVER, [])
    assert conn.stream(C2S) == PING + GET and conn.stream(S2C) == PONG + b"$1\r\nv\r\n"
    assert conn.started == pytest.approx(1_700_000_000.0)


def test_reordered_and_retransmitted_segments(tmp_path):
    frames, _ = _session()
    get1, get2 = frames[5], frames[6]
    frames[5:7] = [get2, get1, get2, get1]  # out of order, then both again
    write_pcap(tmp_path / "r.pcap", frames)
    (conn,) = read_capture(str(tmp_path / "r.pcap")).connections
    assert conn.stream(C2S) == PING + GET and conn.gaps == []
    assert conn.c2s.duplicates == 2 and conn.c2s.out_of_order == 1


def test_a_missing_segment_is_reported(tmp_path):
    frames, _ = _session()
    del frames[5]  # the first half of GET
    write_pcap(tmp_path / "m.pcap", frames)
    (conn,) = read_capture(str(tmp_path / "m.pcap")).connections
    assert conn.stream(C2S) == PING  # nothing after the hole
    (gap,) = conn.gaps
    assert (gap.direction, gap.offset, gap.size) == (C2S, len(PING), 9)


def test_ipv6_and_other_frames(tmp_path):
    conv = Conversation(("fd00::1", 40000), ("fd00::2", 80))
    frames = [b"\x00" * 20] + conv.handshake() + [conv.data(True, b"GET / HTTP/1.1\r\n\r\n")]
    write_pcap(tmp_path / "v6.pcap", frames)
    capture = read_capture(str(tmp_path / "v6.pcap"))
    assert capture.skipped == 1
    assert capture.connections[0].client == ("fd00::1", 40000)


def test_tcpplays_own_pcap(tmp_path):
    w = PcapWriter()
    pair = PairInfo(1, Endpoint("127.0.0.1", 50000), Endpoint("127.0.0.1", 6479),
                    "tcp:host=127.0.0.1:port=6379", Endpoint("127.0.0.1", 6379))
    data = w.header() + w.pair_opened(pair, 1.0)
    data += w.data(1, "c2s", b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", 1.1, mask=[(18, 24)])
    data += w.data(1, "s2c", b"+OK\r\n", 1.2)
    data += w.data(1, "c2s", b"x" * 100_000, 1.3)  # two segments
    data += w.pair_closed(1, {"how": "fin", "closed_by": "client"}, 1.4)
    (tmp_path / "own.pcap").write_bytes(data)
    (conn,) = read_capture(str(tmp_path / "own.pcap")).connections
    assert conn.client == ("127.0.0.1", 50000) and conn.server[1] == 6379
    assert conn.stream(C2S) == b"*2\r\n$4\r\nAUTH\r\n$6\r\n******\r\n" + b"x" * 100_000
    assert conn.stream(S2C) == b"+OK\r\n" and conn.gaps == [] and conn.done


def test_not_a_capture(tmp_path):
    (tmp_path / "x").write_bytes(b"hello world")
    with pytest.raises(CaptureError, match="not a pcap, pcapng or tcpplay JSON lines file"):
        read_capture(str(tmp_path / "x"))
    with pytest.raises(CaptureError, match="cannot read"):
        read_capture(str(tmp_path / "missing"))


def test_truncated_file(tmp_path):
    frames, _ = _session()
    write_pcap(tmp_path / "t.pcap", frames)
    whole = (tmp_path / "t.pcap").read_bytes()
    (tmp_path / "t.pcap").write_bytes(whole[:-10])
    with pytest.raises(CaptureError, match="truncated"):
        read_capture(str(tmp_path / "t.pcap"))


def test_huge_declared_length_is_refused_before_reading(tmp_path):
    frames, _ = _session()
    write_pcap(tmp_path / "h.pcap", frames[:1])
    data = bytearray((tmp_path / "h.pcap").read_bytes())
    struct.pack_into("<I", data, 24 + 8, 2**31)  # caplen of the first record
    (tmp_path / "h.pcap").write_bytes(bytes(data))
    with pytest.raises(CaptureError, match=f"more than {MAX_RECORD}"):
        read_capture(str(tmp_path / "h.pcap"))


def test_too_many_connections(tmp_path):
    frames = []
    for port in range(5):
        frames += Conversation((CLIENT[0], 40000 + port)).handshake()
    write_pcap(tmp_path / "many.pcap", frames)
    with pytest.raises(CaptureError, match="more than 3 TCP connections"):
        with open(tmp_path / "many.pcap", "rb") as f:
            read_pcap(f, "many.pcap", Tracker(max_connections=3))


@given(pcapng=st.booleans(), garbage=st.binary(max_size=300), keep=st.integers(0, 400))
def test_garbage_raises_only_capture_error(pcapng, garbage, keep):
    frames, _ = _session()
    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out) if pcapng else dpkt.pcap.Writer(out)
    for data in frames:
        writer.writepkt(data, ts=1.0)
    whole = out.getvalue()
    damaged = io.BytesIO(whole[:keep] + garbage)  # a valid start, then anything
    try:
        read_pcap(damaged, "g.pcap", Tracker(), "pcapng" if pcapng else "pcap")
    except CaptureError:
        pass


def _ip_of(ethernet_frame: bytes) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(ethernet_frame).data)


@pytest.mark.parametrize("linktype, wrap", [
    (0, lambda ip: struct.pack("<I", 2) + ip),  # BSD loopback, AF_INET in host order
    (113, lambda ip: bytes(dpkt.sll.SLL(hrd=772, ethtype=0x0800)) + ip),  # Linux cooked
    (276, lambda ip: bytes(dpkt.sll2.SLL2(hrd=772, ethtype=0x0800)) + ip),  # -i any
    (101, lambda ip: ip),  # raw IP
])
def test_other_link_types(tmp_path, linktype, wrap):
    frames, _ = _session()
    path = tmp_path / "link.pcap"
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=linktype)
        for i, frame in enumerate(frames):
            writer.writepkt(wrap(_ip_of(frame)), ts=1.0 + i)
    (conn,) = read_capture(str(path)).connections
    assert conn.stream(C2S) == PING + GET and conn.gaps == []


def test_an_unknown_link_type_is_named(tmp_path):
    with open(tmp_path / "ble.pcap", "wb") as f:
        dpkt.pcap.Writer(f, linktype=251).writepkt(b"\x00" * 10, ts=1.0)
    with pytest.raises(CaptureError, match="link type 251 is not supported"):
        read_capture(str(tmp_path / "ble.pcap"))


def _pcapng_block(kind: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _interface(linktype: int, tsresol: int | None = None) -> bytes:
    options = b""
    if tsresol is not None:  # if_tsresol, then the end of options
        options = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    return _pcapng_block(1, struct.pack("<HHI", linktype, 0, 0) + options)


def _packet(interface: int, ticks: int, frame: bytes) -> bytes:
    return _pcapng_block(6, struct.pack("<IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF,
                                        len(frame), len(frame)) + frame)


def test_a_pcapng_reads_each_packet_with_its_own_interfaces_link_type_and_clock(tmp_path):
    # dumpcap -i lo -i tun0: an Ethernet and a raw IP interface; dpkt read every packet with
    # the first interface's link type (and clock), so the raw IP connection was lost unsaid
    eth_frames, _ = _session()
    other = Conversation(client=("10.0.0.1", 40001))
    raw_frames = other.handshake() + [other.data(True, PING), other.data(False, b"+PONG\r\n")]
    section = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    blocks = [_pcapng_block(0x0A0D0D0A, section), _interface(1), _interface(101, tsresol=9)]
    blocks += [_packet(0, 1_000_000 + i, f) for i, f in enumerate(eth_frames)]  # microseconds
    blocks += [_packet(1, 2_000_000_000 + i, _ip_of(f)) for i, f in enumerate(raw_frames)]
    (tmp_path / "two.pcapng").write_bytes(b"".join(blocks))
    first, second = read_capture(str(tmp_path / "two.pcapng")).connections
    assert first.stream(C2S) == PING + GET and first.started == 1.0
    assert second.stream(C2S) == PING and second.stream(S2C) == b"+PONG\r\n"
    assert second.started == 2.0  # nanoseconds, its interface's resolution


def test_a_pcapng_packet_of_no_interface_is_named(tmp_path):
    section = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    frame = _session()[0][0]
    data = _pcapng_block(0x0A0D0D0A, section) + _interface(1) + _packet(3, 0, frame)
    (tmp_path / "bad.pcapng").write_bytes(data)
    with pytest.raises(CaptureError, match="interface 3, which the file does not describe"):
        read_capture(str(tmp_path / "bad.pcapng"))


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "jsonl"])
def test_a_capture_read_from_a_pipe(tmp_path, kind):
    # tcpplay-replay <(zcat x.pcap.gz), /dev/stdin: the kind was told by reading 4 bytes and
    # seeking back, a traceback (io.UnsupportedOperation) on a pipe
    if kind == "jsonl":
        data = (b'{"type":"open","pair":1,"ts":1.0,"client":"127.0.0.1:5","server":"127.0.0.1:6"}\n'
                b'{"type":"redis","pair":1,"ts":1.1,"command":["PING"],"reply":{"simple":"PONG"}}'
                b'\n')
    else:
        write_pcap(tmp_path / "c", _session()[0], pcapng=kind == "pcapng")
        data = (tmp_path / "c").read_bytes()
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb") as w:  # under a pipe's 64 KiB: no reader needed yet
            w.write(data)
        capture = read_capture(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
    (conn,) = capture.connections
    assert capture.kind == kind and conn.stream(C2S) in (PING + GET, PING)


def test_a_damaged_capture_from_a_pipe_is_a_capture_error(tmp_path):
    write_pcap(tmp_path / "c", _session()[0])
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb") as w:
            w.write((tmp_path / "c").read_bytes()[:-5])
        with pytest.raises(CaptureError, match="truncated: a record at byte"):
            read_capture(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
