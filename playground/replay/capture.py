"""Read a capture file into TCP connections: classic pcap and pcapng (tcpdump, Wireshark,
tshark, dumpcap, and tcpplay's own ``--pcap`` files) through dpkt, tcpplay's JSON lines through
``jsonlines`` (pure: no Twisted, no clock).

dpkt does the framing (the file formats and the link, IP and TCP headers); the reassembly is
ours (``reassembly``). Link types read: Ethernet (what Linux' loopback interface gives tcpdump
and tshark, and what tcpplay writes), BSD loopback, Linux cooked (v1 and v2: ``-i any``) and raw
IP. Frames that are not TCP over IPv4 or IPv6, and IP fragments, are skipped and counted.

Every failure is a :class:`CaptureError` naming the file and what is wrong with it: not a
capture, an unsupported link type, a truncated file, a record declaring more than
``MAX_RECORD`` bytes (read before anything that size is allocated), or a bound of the
``Tracker`` exceeded.
"""

from __future__ import annotations

import socket
import struct

import attrs
import dpkt

from playground.replay.reassembly import CaptureError, Connection, Tracker

MAX_RECORD = 16 * 1024 * 1024  # a pcap record or pcapng block larger than this is refused
PCAP_MAGICS = {bytes.fromhex(m) for m in ("d4c3b2a1", "a1b2c3d4", "4d3cb2a1", "a1b23c4d")}
PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")
# the sizes dpkt reads a record's or block's header with: an empty read of that size is the end
_HEADER_READS = (16, 8)


@attrs.frozen
class Capture:
    """What a file held: its connections in order, and the frames that were not TCP."""

    path: str
    kind: str  # pcap | pcapng | jsonl
    connections: list
    frames: int = 0
    skipped: int = 0  # frames that are not TCP over IP, or IP fragments, or undecodable


def read_capture(path: str, tracker: Tracker | None = None) -> Capture:
    """The connections of the capture at ``path``; :class:`CaptureError` when it cannot be
    read."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise CaptureError(f"{path}: cannot read: {e.strerror or e}")
    with f:
        head = f.read(4)
        f.seek(0)
        if head in PCAP_MAGICS or head == PCAPNG_MAGIC:
            kind = "pcapng" if head == PCAPNG_MAGIC else "pcap"
            return read_pcap(f, path, tracker or Tracker(), kind)
        if head[:1] == b"{":
            from playground.replay.jsonlines import read_jsonlines

            return read_jsonlines(f, path, tracker or Tracker())
        raise CaptureError(f"{path}: not a pcap, pcapng or tcpplay JSON lines file "
                           f"(it starts with {head!r})")


class _Guarded:
    """The file as dpkt reads it, refusing huge declared lengths and noticing truncation."""

    def __init__(self, f, path: str):
        self._f = f
        self.name = path

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise CaptureError(f"{self.name}: a record declares a negative length")
        if n > MAX_RECORD:
            raise CaptureError(f"{self.name}: a record at byte {self._f.tell()} declares {n} "
                               f"bytes (more than {MAX_RECORD}): the file is damaged")
        data = self._f.read(n)
        if len(data) < n and (data or n not in _HEADER_READS):
            raise CaptureError(f"{self.name}: truncated: a record at byte "
                               f"{self._f.tell() - len(data)} needs {n} bytes, "
                               f"the file has {len(data)} more")
        return data

    def seek(self, *args):
        return self._f.seek(*args)

    def tell(self):
        return self._f.tell()


def _raw_ip(frame: bytes):
    version = frame[0] >> 4 if frame else 0
    if version == 4:
        return dpkt.ip.IP(frame)
    if version == 6:
        return dpkt.ip6.IP6(frame)
    return None


_LINKS = {
    dpkt.pcap.DLT_EN10MB: lambda f: dpkt.ethernet.Ethernet(f).data,
    dpkt.pcap.DLT_NULL: lambda f: dpkt.loopback.Loopback(f).data,
    dpkt.pcap.DLT_LOOP: lambda f: dpkt.loopback.Loopback(f).data,
    dpkt.pcap.DLT_LINUX_SLL: lambda f: dpkt.sll.SLL(f).data,
    276: lambda f: dpkt.sll2.SLL2(f).data,  # LINKTYPE_LINUX_SLL2 (tshark -i any)
    101: _raw_ip,  # LINKTYPE_RAW
    12: _raw_ip,  # DLT_RAW on Linux and OpenBSD
    14: _raw_ip,  # DLT_RAW on BSD/OS
    228: _raw_ip,  # LINKTYPE_IPV4
    229: _raw_ip,  # LINKTYPE_IPV6
}
_FRAMING_ERRORS = (dpkt.Error, ValueError, struct.error, EOFError)
_FRAME_ERRORS = (dpkt.Error, ValueError, struct.error, IndexError, KeyError, TypeError)


def read_pcap(f, path: str, tracker: Tracker, kind: str = "pcap") -> Capture:
    """A pcap or pcapng file (open, binary) read into connections."""
    guarded = _Guarded(f, path)
    try:
        reader = dpkt.pcap.UniversalReader(guarded)
        link = reader.datalink()
    except CaptureError:
        raise
    except _FRAMING_ERRORS as e:
        raise CaptureError(f"{path}: not a readable pcap or pcapng file ({e})")
    decode = _LINKS.get(link)
    if decode is None:
        raise CaptureError(f"{path}: link type {link} is not supported (Ethernet, loopback, "
                           f"Linux cooked and raw IP are)")
    frames = skipped = 0
    packet = tracker.packet
    records = iter(reader)
    while True:
        try:
            ts, frame = next(records)
        except StopIteration:
            break
        except CaptureError:
            raise
        except _FRAMING_ERRORS as e:
            raise CaptureError(f"{path}: record {frames + 1} cannot be read: "
                               f"{e or type(e).__name__}")
        frames += 1
        try:
            ip = decode(frame)
            if type(ip) not in (dpkt.ip.IP, dpkt.ip6.IP6) or _fragment(ip):
                skipped += 1
                continue
            tcp = ip.data
            if type(tcp) is not dpkt.tcp.TCP:
                skipped += 1
                continue
            if type(ip) is dpkt.ip.IP:
                src = (socket.inet_ntop(socket.AF_INET, ip.src), tcp.sport)
                dst = (socket.inet_ntop(socket.AF_INET, ip.dst), tcp.dport)
            else:
                src = (socket.inet_ntop(socket.AF_INET6, ip.src), tcp.sport)
                dst = (socket.inet_ntop(socket.AF_INET6, ip.dst), tcp.dport)
            seq, ack, flags, payload = tcp.seq, tcp.ack, tcp.flags, bytes(tcp.data)
        except _FRAME_ERRORS:
            skipped += 1
            continue
        packet(float(ts), src, dst, seq, ack, flags, payload)
    return Capture(path, kind, tracker.finish(), frames, skipped)


def _fragment(ip) -> bool:
    return type(ip) is dpkt.ip.IP and bool(ip.mf or ip.offset)


__all__ = ["Capture", "CaptureError", "Connection", "read_capture", "read_pcap", "MAX_RECORD"]
