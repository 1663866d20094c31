"""pcap output: the pure record builder (framing, seq/ack, checksums, masking), tshark reading
its files (HTTP and RESP dissectors, stream reassembly, no malformed packets or TCP analysis
warnings), and the file-owning sink driven by a MemoryReactorClock."""

from __future__ import annotations

import ipaddress
import os
import random
import struct
import subprocess
import sys

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock

from playground.proxy.observer import CLIENT_TO_SERVER as C2S
from playground.proxy.observer import SERVER_TO_CLIENT as S2C
from playground.proxy.observer import Endpoint, PairInfo
from playground.sinks.pcapsink import PcapSink
from playground.sinks.pcapwriter import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    PcapWriter,
    internet_checksum,
    target_port,
)
from tests.support.capture import redis_commands, rows, tshark

T0 = 1_700_000_000.0
HDR = PcapWriter().header()


# -- an independent reader ----------------------------------------------------------------------


def naive_checksum(data: bytes) -> int:
    """RFC 1071 written the slow, obvious way (independent of playground.sinks.pcapwriter)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


class Pkt:
    """One decoded record."""

    def __init__(self, ts, frame):
        self.ts = ts
        self.frame = frame
        self.dst_mac, self.src_mac = frame[0:6], frame[6:12]
        (self.ethertype,) = struct.unpack("!H", frame[12:14])
        ip = frame[14:]
        if self.ethertype == 0x0800:
            ihl = (ip[0] & 0x0F) * 4
            (total,) = struct.unpack("!H", ip[2:4])
            assert ip[0] >> 4 == 4 and ip[9] == 6 and total == len(ip)
            self.ip_header = ip[:ihl]
            self.src, self.dst = ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
            seg = ip[ihl:total]
            pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(seg))
        else:
            assert self.ethertype == 0x86DD and ip[0] >> 4 == 6 and ip[6] == 6
            (plen,) = struct.unpack("!H", ip[4:6])
            assert plen == len(ip) - 40
            self.ip_header = None
            self.src, self.dst = ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40])
            seg = ip[40:]
            pseudo = ip[8:40] + struct.pack("!IxxxB", len(seg), 6)
        self.segment, self.pseudo = seg, pseudo
        (
            self.sport,
            self.dport,
            self.seq,
            self.ack,
            off,
            self.flags,
            self.window,
            self.checksum,
        ) = struct.unpack("!HHIIBBHH", seg[:18])
        self.options = seg[20 : (off >> 4) * 4]
        self.payload = seg[(off >> 4) * 4 :]

    def checksums_ok(self) -> bool:
        ok = naive_checksum(self.pseudo + self.segment) == 0
        if self.ip_header is not None:
            ok = ok and naive_checksum(self.ip_header) == 0
        return ok


def read_pcap(blob: bytes):
    magic, major, minor, zone, sigfigs, snaplen, link = struct.unpack("<IHHiIII", blob[:24])
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, 1)
    pos, out = 24, []
    while pos < len(blob):
        sec, usec, incl, orig = struct.unpack("<IIII", blob[pos : pos + 16])
        assert incl == orig and incl <= snaplen and usec < 1_000_000
        pos += 16
        assert pos + incl <= len(blob), "truncated record"
        out.append(Pkt(sec + usec / 1e6, blob[pos : pos + incl]))
        pos += incl
    return out


def pair(pid=1, client=("127.0.0.1", 40001), server=("127.0.0.1", 6379), target="6379"):
    return PairInfo(
        id=pid,
        client=Endpoint(*client),
        listen=Endpoint("127.0.0.1", 6479),
        target=target,
        server=Endpoint(*server) if server else None,
    )


def stream_of(pkts, sport, dport):
    return b"".join(p.payload for p in pkts if (p.sport, p.dport) == (sport, dport))


# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.pure
def test_global_header_fields_and_once():
    w = PcapWriter()
    hdr = w.header()
    assert struct.unpack("<IHHiIII", hdr) == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    assert w.header() == b""
    # A writer used without header() puts it in front of its first record, once.
    w2 = PcapWriter()
    first = w2.pair_opened(pair(), T0)
    assert first.startswith(hdr)
    assert not w2.data(1, C2S, b"x", T0).startswith(hdr[:4])


@pytest.mark.pure
def test_handshake_and_timestamps():
    w = PcapWriter()
    pkts = read_pcap(w.header() + w.pair_opened(pair(), T0 + 0.1234567))
    syn, synack, ack = pkts
    assert [p.flags for p in pkts] == [SYN, SYN | ACK, ACK]
    assert (syn.src, syn.sport, syn.dst, syn.dport) == (
        ipaddress.ip_address("127.0.0.1"),
        40001,
        ipaddress.ip_address("127.0.0.1"),
        6379,
    )
    assert (synack.sport, synack.dport) == (6379, 40001)
    assert synack.ack == (syn.seq + 1) & 0xFFFFFFFF
    assert ack.seq == synack.ack and ack.ack == (synack.seq + 1) & 0xFFFFFFFF
    assert syn.options[:4] == bytes([2, 4]) + struct.pack("!H", 65495)
    assert bytes([3, 3, 14]) in syn.options and bytes([3, 3, 14]) in synack.options
    assert all(abs(p.ts - (T0 + 0.123457)) < 1e-6 for p in pkts)
    assert syn.src_mac != synack.src_mac and syn.dst_mac == synack.src_mac


@pytest.mark.pure
def test_seq_ack_over_segments_both_directions():
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(), T0)
    talk = [(C2S, b"a" * 10), (C2S, b"b" * 7), (S2C, b"c" * 3), (C2S, b"d"), (S2C, b"e" * 100)]
    for i, (d, chunk) in enumerate(talk):
        blob += w.data(1, d, chunk, T0 + i)
    pkts = read_pcap(blob)
    syn, synack = pkts[0], pkts[1]
    nxt = {40001: syn.seq + 1, 6379: synack.seq + 1}
    data_pkts = pkts[3:]
    sent = {40001: 0, 6379: 0}
    for p in data_pkts:
        other = p.dport
        assert p.seq == nxt[p.sport] & 0xFFFFFFFF, "seq is the sender's next byte"
        assert p.ack == nxt[other] & 0xFFFFFFFF, "ack is everything the peer sent so far"
        if p.payload:
            assert p.flags == PSH | ACK
            nxt[p.sport] += len(p.payload)
            sent[p.sport] += len(p.payload)
        else:
            assert p.flags == ACK
    assert sent == {40001: 18, 6379: 103}
    # every data call is followed by the receiver's ACK of all of it
    assert len(data_pkts) == 2 * len(talk)
    assert w.offset(1, C2S) == 18 and w.offset(1, S2C) == 103


@pytest.mark.pure
def test_large_chunk_is_split_at_65000():
    w = PcapWriter()
    chunk = os.urandom(150_001)
    pkts = read_pcap(w.header() + w.pair_opened(pair(), T0) + w.data(1, S2C, chunk, T0))
    segs = [p for p in pkts if p.payload]
    assert [len(p.payload) for p in segs] == [65000, 65000, 20001]
    assert b"".join(p.payload for p in segs) == chunk
    assert [p.seq - segs[0].seq for p in segs] == [0, 65000, 130000]
    assert pkts[-1].flags == ACK and pkts[-1].ack == (segs[0].seq + 150_001) & 0xFFFFFFFF
    assert all(p.checksums_ok() for p in pkts)


@pytest.mark.pure
def test_snaplen_truncates_captured_bytes_only():
    w = PcapWriter(snaplen=100)
    assert struct.unpack("<IHHiIII", w.header())[5] == 100
    w.pair_opened(pair(), T0)
    rec = w.data(1, C2S, b"z" * 500, T0)
    sec, usec, incl, orig = struct.unpack("<IIII", rec[:16])
    assert (incl, orig) == (100, 14 + 20 + 20 + 500)
    assert len(rec) == 116 + 16 + 54  # the next record follows the truncated frame
    sec2, usec2, incl2, orig2 = struct.unpack("<IIII", rec[116:132])
    assert incl2 == orig2 == 54, "the receiver's ACK"


@pytest.mark.pure
def test_sequence_numbers_wrap():
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(), T0)
    w._conns[1].client.seq = 0xFFFFFFF0  # force a wrap on the next data
    pkts = read_pcap(
        blob
        + w.data(
            1,
            C2S,
            b"x" * 40,
            T0,
        )
        + w.data(1, C2S, b"y", T0)
    )
    assert pkts[3].seq == 0xFFFFFFF0 and pkts[4].ack == 0x18
    assert pkts[5].seq == 0x18


@pytest.mark.pure
def test_half_close_then_close_fin_flags():
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(), T0) + w.data(1, C2S, b"PING\r\n", T0)
    blob += w.half_closed(1, C2S, T0 + 1)
    assert w.half_closed(1, C2S, T0 + 1) == b"", "a second FIN in one direction is not emitted"
    blob += w.data(1, S2C, b"+PONG\r\n", T0 + 2)
    blob += w.pair_closed(1, {"how": "fin", "closed_by": "server"}, T0 + 3)
    pkts = read_pcap(blob)
    fins = [p for p in pkts if p.flags & FIN]
    assert [(p.sport, p.flags) for p in fins] == [(40001, FIN | ACK), (6379, FIN | ACK)]
    c_fin, s_fin = fins
    # the FIN takes one sequence number: the peer's ACK after it says so
    after_c_fin = pkts[pkts.index(c_fin) + 1]
    assert after_c_fin.sport == 6379 and after_c_fin.ack == c_fin.seq + 1
    assert s_fin.ack == c_fin.seq + 1
    assert pkts[-1].flags == ACK and pkts[-1].ack == s_fin.seq + 1
    assert not any(p.flags & RST for p in pkts)
    assert w.pair_closed(1, {"how": "fin"}, T0) == b"" and not w.is_open(1)


@pytest.mark.pure
@pytest.mark.parametrize(
    "summary, sender",
    [
        ({"how": "reset", "closed_by": "server"}, 6379),
        ({"how": "reset", "closed_by": "client"}, 40001),
        ({"how": "abort"}, 40001),
        ({"how": "timeout", "closed_by": "proxy"}, 40001),
        ({"how": "reset", "closed_by": "toxic reset_peer_downstream"}, 6379),
    ],
)
def test_reset_kinds(summary, sender):
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(), T0) + w.data(1, C2S, b"x", T0)
    pkts = read_pcap(blob + w.pair_closed(1, summary, T0 + 1))
    last = pkts[-1]
    assert last.flags == RST | ACK and last.sport == sender
    assert not any(p.flags & FIN for p in pkts)
    expected_seq = pkts[3].seq + 1 if sender == 40001 else pkts[1].seq + 1
    assert last.seq == expected_seq


@pytest.mark.pure
def test_close_without_half_close_fins_both_ways():
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(), T0)
    pkts = read_pcap(blob + w.pair_closed(1, {"how": "fin"}, T0))
    assert [(p.sport, p.flags) for p in pkts[3:]] == [
        (40001, FIN | ACK),
        (6379, ACK),
        (6379, FIN | ACK),
        (40001, ACK),
    ]


@pytest.mark.pure
def test_ipv6_framing_and_mixed_families():
    w = PcapWriter()
    p6 = pair(2, client=("::1", 50000), server=("::1", 6379))
    pkts = read_pcap(w.header() + w.pair_opened(p6, T0) + w.data(2, C2S, b"hello", T0))
    assert all(p.ethertype == 0x86DD for p in pkts)
    assert pkts[0].src == ipaddress.ip_address("::1") and pkts[3].payload == b"hello"
    assert all(p.checksums_ok() for p in pkts)
    # IPv6 client, IPv4 server: one IPv6 conversation with the IPv4-mapped server address
    mixed = pair(3, client=("::1", 50001), server=("127.0.0.1", 6379))
    pkts = read_pcap(HDR + w.pair_opened(mixed, T0))
    assert pkts[0].dst == ipaddress.ip_address("::ffff:127.0.0.1")
    assert all(p.checksums_ok() for p in pkts)


@pytest.mark.pure
def test_synthesized_addresses_for_unix_and_unknown_sides():
    w = PcapWriter()
    unix = PairInfo(
        id=4,
        client=Endpoint("/tmp/in.sock", 0),
        listen=Endpoint("/tmp/in.sock", 0),
        target="unix:/tmp/redis.sock",
        server=Endpoint("/tmp/redis.sock", 0),
    )
    pkts = read_pcap(w.header() + w.pair_opened(unix, T0))
    syn = pkts[0]
    assert (str(syn.src), str(syn.dst)) == ("127.0.0.1", "127.0.0.2")
    assert syn.dport == 6379 and 49152 <= syn.sport <= 65535
    # server not known yet: the port comes from the --target string
    early = pair(5, server=None, target="tcp:host=redis.local:port=7000")
    syn = read_pcap(HDR + w.pair_opened(early, T0))[0]
    assert (str(syn.dst), syn.dport) == ("127.0.0.2", 7000)
    # an explicit server_port wins
    syn = read_pcap(PcapWriter(server_port=80).pair_opened(pair(), T0))[0]
    assert syn.dport == 80


@pytest.mark.pure
@pytest.mark.parametrize(
    "target, port",
    [
        ("6379", 6379),
        ("redis.local:6380", 6380),
        ("[::1]:6381", 6381),
        ("tcp:host=127.0.0.1:port=6382", 6382),
        ("tcp:localhost:6383", 6383),
        ("tcp:localhost:6384:timeout=5", 6384),
        ("tls:host=db:port=6385", 6385),
        ("unix:/tmp/redis.sock", None),
        ("", None),
    ],
)
def test_target_port(target, port):
    assert target_port(target) == port


@pytest.mark.pure
def test_checksums_against_independent_computation():
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(), T0)
    for n in (1, 2, 3, 1499, 1500, 65001):  # odd and even lengths, one split
        blob += w.data(1, C2S, os.urandom(n), T0)
        blob += w.data(1, S2C, os.urandom(n), T0)
    blob += w.pair_opened(pair(9, client=("fe80::1%eth0", 1234), server=("::1", 80)), T0)
    blob += w.data(9, C2S, b"odd", T0)
    blob += w.pair_closed(9, {"how": "reset"}, T0)
    pkts = read_pcap(blob)
    assert len(pkts) > 20
    for p in pkts:
        assert p.checksums_ok()
        # and the header field is what the naive algorithm computes over a zeroed field
        zeroed = p.segment[:16] + b"\0\0" + p.segment[18:]
        assert p.checksum == naive_checksum(p.pseudo + zeroed)
    assert (
        internet_checksum(
            b"\x45\x00\x00\x73\x00\x00\x40\x00\x40\x11\x00\x00\xc0\xa8\x00\x01\xc0\xa8\x00\xc7"
        )
        == 0xB861
    )  # RFC 1071 / Wikipedia example


@pytest.mark.pure
def test_masking_keeps_lengths_and_framing():
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(), T0)
    cmd = b"*2\r\n$4\r\nAUTH\r\n$11\r\nhunter2-pwd\r\n"
    secret_at = cmd.index(b"hunter2")
    # registered ahead, in stream offsets, spanning two chunks
    assert w.mask(1, C2S, secret_at, secret_at + 11) == 0
    blob += w.data(1, C2S, cmd[: secret_at + 3], T0)
    blob += w.data(1, C2S, cmd[secret_at + 3 :], T0)
    # chunk-relative ranges on a later chunk
    blob += w.data(1, S2C, b"+OK secret\r\n", T0, mask=[(4, 10)])
    pkts = read_pcap(blob)
    assert stream_of(pkts, 40001, 6379) == cmd.replace(b"hunter2-pwd", b"*" * 11)
    assert stream_of(pkts, 6379, 40001) == b"+OK ******\r\n"
    assert all(p.checksums_ok() for p in pkts)
    # too late: bytes already written are reported as left in clear
    assert w.mask(1, C2S, 0, 4) == 4
    assert w.mask(1, C2S, len(cmd) - 2, len(cmd) + 3) == 2
    blob = w.data(1, C2S, b"abcdef", T0)
    assert read_pcap(HDR + blob)[0].payload == b"***def"
    assert w.mask(99, C2S, 0, 5) == 5, "an unknown pair cannot be masked"


@pytest.mark.pure
def test_odd_calls_never_raise():
    w = PcapWriter()
    assert w.data(1, C2S, b"x", T0) == b""
    assert w.half_closed(1, C2S, T0) == b"" and w.pair_closed(1, {}, T0) == b""
    w.header()
    w.pair_opened(pair(), T0)
    assert w.pair_opened(pair(), T0) == b"", "a repeated open is ignored"
    assert w.data(1, "sideways", b"x", T0) == b"" and w.data(1, C2S, b"", T0) == b""
    assert w.half_closed(1, "sideways", T0) == b""
    closing = read_pcap(HDR + w.pair_closed(1, None, -5.0))
    assert closing[0].ts == 0 and closing[0].flags == FIN | ACK


@pytest.mark.pure
@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=3000),
    st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
    st.integers(min_value=1, max_value=700),
)
def test_any_split_gives_the_same_stream(payload, cuts, max_segment):
    w = PcapWriter(max_segment=max_segment)
    blob = w.header() + w.pair_opened(pair(), T0)
    cuts = sorted({c for c in cuts if c < len(payload)} | {0, len(payload)})
    for a, b in zip(cuts, cuts[1:], strict=False):
        blob += w.data(1, C2S, payload[a:b], T0)
        blob += w.data(1, S2C, payload[a:b][::-1], T0)
    blob += w.pair_closed(1, {"how": "fin"}, T0)
    pkts = read_pcap(blob)
    assert stream_of(pkts, 40001, 6379) == payload
    assert all(len(p.payload) <= max_segment and p.checksums_ok() for p in pkts)


# -- tshark -------------------------------------------------------------------------------------

HTTP_REQ1 = b"GET /a HTTP/1.1\r\nHost: example\r\n\r\n"
HTTP_RESP1 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
HTTP_REQ2 = b"POST /b HTTP/1.1\r\nHost: example\r\nContent-Length: 11\r\n\r\nhello=world"
HTTP_RESP2 = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
HTTP_REQ3 = b"GET /c HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"
BIG = os.urandom(150_000)
HTTP_RESP3 = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BIG) + BIG

REDIS_C2S = [
    b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
    b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n",  # pipelined
    b"*2\r\n$4\r\nAUTH\r\n$6\r\nse",
    b"cret\r\n",  # one command over two segments
]
REDIS_S2C = [b"+OK\r\n", b"$5\r\nvalue\r\n+PONG\r\n", b"-ERR no password\r\n"]
REDIS_COMMANDS = 4


def follow_raw(path, *streams: int) -> dict[int, tuple[bytes, bytes]]:
    """``tshark -q -z follow,tcp,raw,N`` for each stream in one run: {N: (c2s, s2c)}.

    Node 0 is the side that sent the SYN (the client); the other side's lines start with a tab.
    """
    args = []
    for n in streams:
        args += ["-z", f"follow,tcp,raw,{n}"]
    text = tshark(path, "-q", *args)
    result = {}
    for block in text.split("Follow: tcp,raw")[1:]:
        n = int(block.split("tcp.stream eq ", 1)[1].split()[0])
        body = block.split("Node 1:", 1)[1].split("\n", 1)[1].split("=" * 20, 1)[0]
        c2s, s2c = b"", b""
        for line in body.splitlines():
            if line.startswith("\t"):
                s2c += bytes.fromhex(line.strip())
            elif line.strip():
                c2s += bytes.fromhex(line.strip())
        result[n] = (c2s, s2c)
    assert sorted(result) == sorted(streams)
    return result


def no_problems(path, *extra) -> None:
    bad = tshark(
        path, *extra, "-Y", "_ws.malformed || tcp.analysis.flags || _ws.expert.severity == error"
    )
    assert rows(bad) == [], bad
    bad = tshark(
        path,
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-Y",
        "tcp.checksum.status != 1 || (ip && ip.checksum.status != 1)",
    )
    assert rows(bad) == [], bad


def write_exchanges(http_port=80):
    w = PcapWriter()
    blob = w.header()
    now = T0
    p1 = pair(1, client=("127.0.0.1", 40001), server=("127.0.0.1", http_port), target="x")
    blob += w.pair_opened(p1, now)
    for req, resp in ((HTTP_REQ1, HTTP_RESP1), (HTTP_REQ2, HTTP_RESP2)):
        now += 0.01
        blob += w.data(1, C2S, req, now)
        now += 0.01
        blob += w.data(1, S2C, resp[:20], now)  # a response over two segments
        blob += w.data(1, S2C, resp[20:], now + 0.001)
    blob += w.pair_closed(1, {"how": "fin", "closed_by": "client"}, now + 0.02)
    p2 = pair(2, client=("::1", 40002), server=("::1", http_port), target="x")
    blob += w.pair_opened(p2, now)
    blob += w.data(2, C2S, HTTP_REQ3, now + 0.01)
    blob += w.data(2, S2C, HTTP_RESP3, now + 0.02)
    blob += w.half_closed(2, S2C, now + 0.03)
    blob += w.pair_closed(2, {"how": "fin", "closed_by": "server"}, now + 0.04)
    p3 = pair(3, client=("127.0.0.1", 40003), server=("127.0.0.1", 6379))
    blob += w.pair_opened(p3, now)
    for i, chunk in enumerate(REDIS_C2S):
        blob += w.data(3, C2S, chunk, now + 0.1 + i * 0.01)
        if i < len(REDIS_S2C) and i != 2:
            blob += w.data(3, S2C, REDIS_S2C[i], now + 0.105 + i * 0.01)
    blob += w.data(3, S2C, REDIS_S2C[2], now + 0.2)
    blob += w.pair_closed(3, {"how": "reset", "closed_by": "server"}, now + 0.3)
    return blob


def http_methods(path) -> list[str]:
    """The method of every HTTP request, one a row even where a frame holds several."""
    return rows(
        tshark(
            path,
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\n",
            "-e",
            "http.request.method",
        )
    )


@pytest.mark.real
def test_tshark_decodes_http_and_redis(tmp_path):
    path = tmp_path / "x.pcap"
    path.write_bytes(write_exchanges())
    methods = rows(
        tshark(
            path,
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
        )
    )
    assert methods == ["GET\t/a", "POST\t/b", "GET\t/c"]
    codes = rows(tshark(path, "-Y", "http.response", "-T", "fields", "-e", "http.response.code"))
    assert codes == ["200", "201", "200"]
    assert redis_commands(path) == REDIS_COMMANDS
    replies = tshark(
        path,
        "-Y",
        "resp && tcp.srcport == 6379",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-e",
        "resp.string",
        "-e",
        "resp.error",
    )
    assert "OK" in replies and "PONG" in replies and "ERR no password" in replies
    convs = tshark(path, "-q", "-z", "conv,tcp")
    assert "127.0.0.1:40001" in convs and "::1:40002" in convs and "127.0.0.1:40003" in convs
    # The only expert warnings are the RST the Redis pair ends with.
    warns = rows(
        tshark(
            path, "-Y", "_ws.expert.severity >= warning", "-T", "fields", "-e", "tcp.flags.reset"
        )
    )
    assert warns == ["1"]
    no_problems(path)
    # Each stream reassembles to exactly the bytes forwarded.
    assert follow_raw(path, 0, 1, 2) == {
        0: (HTTP_REQ1 + HTTP_REQ2, HTTP_RESP1 + HTTP_RESP2),
        1: (HTTP_REQ3, HTTP_RESP3),
        2: (b"".join(REDIS_C2S), b"".join(REDIS_S2C)),
    }


@pytest.mark.real
def test_tshark_decode_as_for_other_ports(tmp_path):
    path = tmp_path / "ports.pcap"
    path.write_bytes(write_exchanges(http_port=8081))
    decode_as = ["-d", "tcp.port==8081,http"]
    methods = rows(
        tshark(path, *decode_as, "-Y", "http.request", "-T", "fields", "-e", "http.request.method")
    )
    assert methods == ["GET", "POST", "GET"]
    no_problems(path, *decode_as)
    # and RESP on a non-standard port
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(server=("127.0.0.1", 16379)), T0)
    blob += w.data(1, C2S, REDIS_C2S[0], T0) + w.data(1, S2C, b"+OK\r\n", T0)
    path.write_bytes(blob + w.pair_closed(1, {"how": "fin"}, T0))
    assert redis_commands(path, 16379) == 0
    assert redis_commands(path, 16379, "-d", "tcp.port==16379,resp") == 1


REDIS_CMDS = [
    b"*1\r\n$4\r\nPING\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabc\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n",
] * 3
HTTP_REQS = [b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(3)] + [
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde"
]
HTTP_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def random_split_pcap(rng, pairs: int, anywhere: bool) -> tuple[bytes, dict]:
    """``pairs`` Redis pairs then ``pairs`` HTTP pairs, each sending its whole request stream
    cut at random places: anywhere, or only between commands/requests (pipelining)."""
    w = PcapWriter()
    blob, expected = w.header(), {}
    for pid in range(1, 2 * pairs + 1):
        redis = pid <= pairs
        msgs, reply = (REDIS_CMDS, b"+OK\r\n") if redis else (HTTP_REQS, HTTP_RESP)
        stream = b"".join(msgs)
        ends = [sum(map(len, msgs[:i])) for i in range(1, len(msgs))]
        pool = range(1, len(stream)) if anywhere else ends
        cuts = sorted({0, len(stream), *rng.sample(pool, rng.randint(0, min(6, len(pool))))})
        now = T0 + pid
        server = ("127.0.0.1", 6379 if redis else 80)
        blob += w.pair_opened(pair(pid, client=("127.0.0.1", 41000 + pid), server=server), now)
        for a, b in zip(cuts, cuts[1:], strict=False):
            blob += w.data(pid, C2S, stream[a:b], now + b / 1e5)
        replies = reply * len(msgs)
        blob += w.data(pid, S2C, replies, now + 0.5)
        blob += w.pair_closed(pid, {"how": "fin"}, now + 0.6)
        expected[pid - 1] = (stream, replies)  # tcp.stream numbers from 0 in file order
    return blob, expected


@pytest.mark.real
def test_tshark_counts_pipelined_commands_and_requests(tmp_path):
    """Whole commands/requests grouped at random into segments: tshark counts every one."""
    path = tmp_path / "pipelined.pcap"
    blob, _ = random_split_pcap(random.Random(1234), 30, anywhere=False)
    path.write_bytes(blob)
    assert redis_commands(path) == 30 * len(REDIS_CMDS)
    methods = http_methods(path)
    assert len(methods) == 30 * len(HTTP_REQS)
    no_problems(path)


@pytest.mark.real
def test_tshark_reassembles_streams_cut_anywhere(tmp_path):
    """Cut anywhere (mid-line, between CR and LF): the streams reassemble byte for byte, HTTP
    still counts exactly, nothing is malformed. tshark 4.0's RESP dissector miscounts some of
    these cuts (a segment ending right after an array header counts that array twice), so the
    Redis count is only bounded here."""
    path = tmp_path / "anywhere.pcap"
    blob, expected = random_split_pcap(random.Random(99), 20, anywhere=True)
    path.write_bytes(blob)
    assert follow_raw(path, *expected) == expected
    methods = http_methods(path)
    assert len(methods) == 20 * len(HTTP_REQS)
    assert redis_commands(path) >= 20 * len(REDIS_CMDS)
    no_problems(path)


@pytest.mark.real
def test_tshark_shows_masked_secret(tmp_path):
    w = PcapWriter()
    blob = w.header() + w.pair_opened(pair(), T0)
    cmd = b"*2\r\n$4\r\nAUTH\r\n$8\r\nsup3rs3c\r\n"
    blob += w.data(1, C2S, cmd, T0, mask=[(cmd.index(b"sup3r"), cmd.index(b"sup3r") + 8)])
    path = tmp_path / "masked.pcap"
    path.write_bytes(blob + w.data(1, S2C, b"+OK\r\n", T0))
    values = tshark(
        path, "-Y", "resp", "-T", "fields", "-E", "occurrence=a", "-e", "resp.bulk_string.value"
    )
    assert b"********".hex() in values and b"sup3rs3c".hex() not in values
    no_problems(path)


@pytest.mark.real
def test_no_problems_check_can_fail(tmp_path):
    """The checksum filter used above does catch a corrupted byte."""
    w = PcapWriter()
    blob = bytearray(w.header() + w.pair_opened(pair(), T0) + w.data(1, C2S, b"PING\r\n", T0))
    blob[blob.rindex(b"PING")] = ord("X")
    path = tmp_path / "bad.pcap"
    path.write_bytes(bytes(blob))
    with pytest.raises(AssertionError):
        no_problems(path)


# -- the sink -----------------------------------------------------------------------------------


@pytest.mark.real
def test_sink_open_write_close_cycle(tmp_path):
    clock = MemoryReactorClock()
    path = tmp_path / "sink.pcap"
    sink = PcapSink(str(path), reactor=clock)
    sink.startService()
    assert path.read_bytes() == PcapWriter().header(), "header on disk at start"
    sink.pair_opened(pair(), T0)
    sink.data(1, C2S, b"*1\r\n$4\r\nPING\r\n", T0 + 0.001)
    assert len(path.read_bytes()) == 24, "nothing written before the end of the turn"
    clock.advance(0)
    pkts = read_pcap(path.read_bytes())
    assert len(pkts) == 5 and pkts[3].payload == b"*1\r\n$4\r\nPING\r\n"
    # several calls in one turn: one batch
    sink.data(1, S2C, b"+PONG\r\n", T0 + 0.002)
    sink.half_closed(1, C2S, T0 + 0.003)
    sink.pair_closed(1, {"how": "fin"}, T0 + 0.004)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert len(read_pcap(path.read_bytes())) == 11
    sink.stopService()
    assert sink._file is None and not clock.getDelayedCalls()
    sink.data(1, C2S, b"late", T0)  # ignored once stopped
    assert len(read_pcap(path.read_bytes())) == 11
    assert redis_commands(path) == 1
    no_problems(path)


@pytest.mark.memory
def test_sink_stop_flushes_queued_records(tmp_path):
    clock = MemoryReactorClock()
    path = tmp_path / "stop.pcap"
    sink = PcapSink(str(path), reactor=clock)
    sink.startService()
    sink.pair_opened(pair(), T0)
    sink.data(1, C2S, b"GET", T0)
    sink.stopService()  # before the turn ends
    pkts = read_pcap(path.read_bytes())
    assert [p.payload for p in pkts if p.payload] == [b"GET"]
    assert not clock.getDelayedCalls()


@pytest.mark.memory
def test_sink_threshold_writes_at_once(tmp_path):
    clock = MemoryReactorClock()
    path = tmp_path / "big.pcap"
    sink = PcapSink(str(path), reactor=clock, flush_threshold=100_000)
    sink.startService()
    sink.pair_opened(pair(), T0)
    sink.data(1, S2C, b"x" * 60_000, T0)
    assert len(path.read_bytes()) == 24
    sink.data(1, S2C, b"y" * 60_000, T0)
    pkts = read_pcap(path.read_bytes())  # whole records only
    assert sum(len(p.payload) for p in pkts) == 120_000
    sink.stopService()


@pytest.mark.memory
def test_sink_mask_in_same_turn_after_the_data(tmp_path):
    clock = MemoryReactorClock()
    path = tmp_path / "mask.pcap"
    sink = PcapSink(str(path), reactor=clock, mask_byte=b"#")
    sink.startService()
    sink.pair_opened(pair(), T0)
    cmd = b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n"
    sink.data(1, C2S, cmd, T0)
    # the decoder sees the same bytes after the sink did, and masks them in the same turn
    at = cmd.index(b"secret")
    assert sink.mask(1, C2S, at, at + 6) == 0
    clock.advance(0)
    assert sink.mask(1, C2S, at, at + 6) == 6, "too late in a later turn"
    sink.data(1, C2S, b"*1\r\n$4\r\nPING\r\n", T0)
    assert sink.mask(1, C2S, len(cmd) + 8, len(cmd) + 12) == 0, "ahead of the bytes"
    sink.stopService()
    pkts = read_pcap(path.read_bytes())
    assert stream_of(pkts, 40001, 6379) == (
        cmd.replace(b"secret", b"######") + b"*1\r\n$4\r\n####\r\n"
    )


@pytest.mark.memory
def test_sink_write_failure_is_logged_once(tmp_path):
    clock = MemoryReactorClock()
    sink = PcapSink(str(tmp_path / "fail.pcap"), reactor=clock)
    sink.startService()

    class Broken:
        def write(self, data):
            raise OSError(28, "No space left on device")

        flush = close = lambda self: None

    sink._file = Broken()
    sink.pair_opened(pair(), T0)
    clock.advance(0)
    assert sink.failed
    sink.data(1, C2S, b"x", T0)  # ignored, no exception
    assert not clock.getDelayedCalls()
    sink.stopService()


@pytest.mark.real
def test_pure_module_imports_no_twisted():
    code = (
        "import sys, playground.sinks.pcapwriter; "
        "sys.exit(any(m.split('.')[0] == 'twisted' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


@pytest.mark.real
@pytest_twisted.ensureDeferred
async def test_sink_with_the_global_reactor(tmp_path):
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    path = tmp_path / "real.pcap"
    sink = PcapSink(str(path))
    sink.startService()
    sink.pair_opened(pair(), reactor.seconds())
    sink.data(1, C2S, b"*1\r\n$4\r\nPING\r\n", reactor.seconds())
    sink.data(1, S2C, b"+PONG\r\n", reactor.seconds())
    for _ in range(100):  # a few reactor turns at most
        if len(path.read_bytes()) > 24:
            break
        await deferLater(reactor, 0.01, lambda: None)
    assert len(read_pcap(path.read_bytes())) == 7
    sink.pair_closed(1, {"how": "fin"}, reactor.seconds())
    sink.stopService()
    assert len(read_pcap(path.read_bytes())) == 11


# -- the tshark command the sink logs ---------------------------------------------------------


@pytest.mark.pure
@pytest.mark.parametrize(
    "target, listen, decode, hint",
    [
        ("tcp:host=127.0.0.1:port=6380", "tcp:6479", "auto",
         "read it with: tshark -r F -d tcp.port==6380,resp (HTTP traffic: -d tcp.port==6380,http)"),
        ("tcp:host=127.0.0.1:port=6380", "tcp:6479", "resp",
         "read it with: tshark -r F -d tcp.port==6380,resp"),
        ("tls:host=example.com:port=8443", "tcp:6479", "http",
         "read it with: tshark -r F -d tcp.port==8443,http"),
        ("unix:path=/tmp/redis.sock", "tcp:6479:interface=127.0.0.1", "resp",
         "the target is not TCP: in the file its side has port 6479; "
         "read it with: tshark -r F -d tcp.port==6479,resp"),
        ("unix:path=/tmp/redis.sock", "unix:/tmp/in.sock", "resp",
         "the target is not TCP: in the file its side has the listening port (or 6379); "
         "read it with tshark -r F -d tcp.port==PORT,resp (the close line names PORT)"),
    ],
)
def test_sink_start_hint(target, listen, decode, hint):
    assert PcapSink("F", target=target, listen=listen, decode=decode).start_hint() == hint


@pytest.mark.memory
def test_sink_close_hint_from_ports_written_and_protocols_decoded(tmp_path):
    clock = MemoryReactorClock()
    path = tmp_path / "a b.pcap"
    sink = PcapSink(str(path), reactor=clock, target="tcp:host=h:port=80", decode="auto")
    quoted = f"'{path}'"
    sink.startService()
    assert sink.close_hint() == sink.start_hint()  # nothing seen yet
    assert sink.start_hint().startswith(f"read it with: tshark -r {quoted} -d tcp.port==80,resp")
    sink.pair_opened(pair(1, server=("127.0.0.1", 8080), target="tcp:host=h:port=80"), T0)
    sink.decoded(1, "http")
    sink.pair_opened(pair(2, server=("127.0.0.1", 6380)), T0)
    sink.decoded(2, "resp")
    sink.pair_opened(pair(3, server=("127.0.0.1", 7000)), T0)
    sink.decoded(3, "text")
    assert sink.close_hint() == (f"read it with: tshark -r {quoted} -d tcp.port==6380,resp "
                                 "-d tcp.port==8080,http")
    sink.pair_opened(pair(4, server=("127.0.0.1", 6380)), T0)
    sink.decoded(4, "http")
    assert sink.close_hint() == (f"read it with: tshark -r {quoted} -d tcp.port==6380,resp "
                                 "-d tcp.port==8080,http (other pairs: -d tcp.port==6380,http)")
    for pid in (1, 2, 3, 4):
        sink.pair_closed(pid, {"how": "fin"}, T0)
    assert not sink._pair_ports
    sink.stopService()
