"""Read a capture file into TCP connections: classic pcap and pcapng (tcpdump, Wireshark,
tshark, dumpcap, and tcpplay's own ``--pcap`` files) through dpkt, tcpplay's JSON lines through
``jsonlines`` (pure: no Twisted, no clock).

dpkt does the framing (the classic pcap format, pcapng's blocks, the link, IP and TCP headers);
pcapng's order of blocks is walked here, so each packet is read with its own interface's link
type and clock (a capture of several interfaces); the reassembly is ours (``reassembly``). Link types read: Ethernet (what Linux' loopback interface gives tcpdump
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
        head = f.peek(4)[:4]  # not read: a pipe (<(zcat x.pcap.gz), /dev/stdin) cannot seek back
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
        self._at = 0  # bytes read (a pipe has no tell)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise CaptureError(f"{self.name}: a record declares a negative length")
        if n > MAX_RECORD:
            raise CaptureError(f"{self.name}: a record at byte {self._at} declares {n} "
                               f"bytes (more than {MAX_RECORD}): the file is damaged")
        data = self._f.read(n)
        if len(data) < n and (data or n not in _HEADER_READS):
            raise CaptureError(f"{self.name}: truncated: a record at byte {self._at} needs {n} "
                               f"bytes, the file has {len(data)} more")
        self._at += len(data)
        return data

    def tell(self) -> int:
        return self._at


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


def _link(linktype: int, path: str, interface: str = ""):
    decode = _LINKS.get(linktype)
    if decode is None:
        raise CaptureError(f"{path}: {interface}link type {linktype} is not supported (Ethernet, "
                           f"loopback, Linux cooked and raw IP are)")
    return decode


def _pcap_records(f, path: str):
    """``(decode, ts, frame)`` for each record of a classic pcap file."""
    try:
        reader = dpkt.pcap.Reader(f)
    except CaptureError:
        raise
    except _FRAMING_ERRORS as e:
        raise CaptureError(f"{path}: not a readable pcap or pcapng file ({e})")
    decode = _link(reader.datalink(), path)
    return ((decode, ts, frame) for ts, frame in reader)


_BOM = {struct.pack("<I", 0x1A2B3C4D): "<", struct.pack(">I", 0x1A2B3C4D): ">"}
_NG = dpkt.pcapng


def _pcapng_records(f, path: str):
    """``(decode, ts, frame)`` for each packet of a pcapng file, with its own interface's link
    type and clock (dpkt's reader gives every packet the first interface's: the packets of a
    ``dumpcap -i lo -i tun0`` raw IP interface were read as Ethernet and lost). Sections start
    over (a file of files joined with ``cat``); blocks other than packets are skipped."""
    order, interfaces, ts = "<", [], 0.0
    while head := f.read(8):
        at = f.tell() - 8
        kind = struct.unpack(order + "I", head[:4])[0]
        if kind == _NG.PCAPNG_BT_SHB:
            bom = f.read(4)
            if bom not in _BOM:
                raise CaptureError(f"{path}: the section at byte {at} has no byte-order mark")
            order, interfaces = _BOM[bom], []
            length = struct.unpack(order + "I", head[4:])[0]
            if length < 28 or length % 4:
                raise CaptureError(f"{path}: a block at byte {at} declares {length} bytes: "
                                   f"the file is damaged")
            f.read(length - 12)
            continue
        length = struct.unpack(order + "I", head[4:])[0]
        if length < 12 or length % 4:
            raise CaptureError(f"{path}: a block at byte {at} declares {length} bytes: the file "
                               f"is damaged")
        block = head + f.read(length - 8)
        le = order == "<"
        if kind == _NG.PCAPNG_BT_IDB:
            idb = (_NG.InterfaceDescriptionBlockLE if le else _NG.InterfaceDescriptionBlock)(block)
            interfaces.append(_interface(idb, order, path, len(interfaces)))
        elif kind in (_NG.PCAPNG_BT_EPB, _NG.PCAPNG_BT_PB):
            if kind == _NG.PCAPNG_BT_EPB:
                pkt = (_NG.EnhancedPacketBlockLE if le else _NG.EnhancedPacketBlock)(block)
            else:
                pkt = (_NG.PacketBlockLE if le else _NG.PacketBlock)(block)
            if pkt.iface_id >= len(interfaces):
                raise CaptureError(f"{path}: the packet at byte {at} names interface "
                                   f"{pkt.iface_id}, which the file does not describe")
            decode, divisor, offset = interfaces[pkt.iface_id]
            ts = offset + ((pkt.ts_high << 32) | pkt.ts_low) / divisor
            yield decode, ts, pkt.pkt_data
        elif kind == _NG.PCAPNG_BT_SPB:  # interface 0, no timestamp of its own
            if not interfaces:
                raise CaptureError(f"{path}: the packet at byte {at} names interface 0, which "
                                   f"the file does not describe")
            size = struct.unpack(order + "I", block[8:12])[0]
            yield interfaces[0][0], ts, block[12:12 + min(size, length - 16)]


def _interface(idb, order: str, path: str, number: int) -> tuple:
    """``(decode, divisor, offset)``: the interface's link type and clock (if_tsresol: a power
    of ten, or of two with the high bit; if_tsoffset: seconds added)."""
    divisor, offset = 1e6, 0
    for opt in idb.opts:
        if opt.code == _NG.PCAPNG_OPT_IF_TSRESOL and opt.data:
            value = opt.data[0]
            divisor = float((2 if value & 0x80 else 10) ** (value & 0x7F))
        elif opt.code == _NG.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) == 8:
            offset = struct.unpack(order + "q", opt.data)[0]
    return _link(idb.linktype, path, f"interface {number}: "), divisor, offset


def read_pcap(f, path: str, tracker: Tracker, kind: str = "pcap") -> Capture:
    """A pcap or pcapng file (open, binary) read into connections."""
    guarded = _Guarded(f, path)
    if kind == "pcapng":
        records = _pcapng_records(guarded, path)
    else:
        records = _pcap_records(guarded, path)
    frames = skipped = 0
    packet = tracker.packet
    while True:
        try:
            decode, ts, frame = next(records)
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
