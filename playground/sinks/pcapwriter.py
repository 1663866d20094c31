"""Turn proxy observer calls into classic libpcap records with synthesized Ethernet/IP/TCP framing.

Pure: no I/O, no clock, no ``twisted``. Every method returns the bytes to append to the file, so
an I/O layer (``playground.sinks.pcapsink``) only writes them. The result opens in ``tshark -r FILE`` and
Wireshark as ordinary TCP conversations, one per proxied pair, that "Follow TCP Stream" and the
HTTP / RESP dissectors decode.

What each call produces:

* ``header()``: the 24-byte global header (magic ``a1b2c3d4`` little-endian, version 2.4,
  microsecond timestamps, link type 1 = Ethernet). It is emitted once; any record method called
  before ``header()`` prepends it.
* ``pair_opened``: a three-way handshake, SYN / SYN-ACK / ACK. SYN and SYN-ACK carry MSS 65495 and
  window scale 14, so the (constant) advertised window of 65535 means ~1 GiB and no burst of data
  looks like a full window.
* ``data``: PSH+ACK segments of at most ``max_segment`` (65 000) payload bytes with correct
  sequence and acknowledgement numbers (32-bit wrap-around), then one pure ACK from the receiver
  for everything it has been sent.
* ``skip_to``: nothing; the next byte of that direction is at that stream offset, the bytes
  before it skipped in the sequence numbers (a store that evicted them: the gap shows).
* ``half_closed``: FIN+ACK from the sender of that direction, ACKed by the other side.
* ``pair_closed``: for ``how == "fin"`` (and other graceful values, see ``GRACEFUL_HOWS``) a
  FIN+ACK for each direction not yet finished; for anything else (``reset``, ``abort``,
  ``timeout``, errors, limits: the proxy aborts those legs) one RST+ACK, sent by the server side
  when ``closed_by`` names it or an injected fault (``toxic NAME``: the client got the RST as if
  from the server), else by the client side. Nothing when both directions already sent
  their FIN.

Addresses. The conversation is drawn between ``PairInfo.client`` and ``PairInfo.server`` (the
proxy itself does not appear). A side whose host is not an IP literal (a unix socket, an unknown
server before the upstream connects) gets a synthesized address: the server ``127.0.0.2`` (or
``fd00::2``) and the client ``127.0.0.1`` (or ``fd00::1``) with a port from a counter in
49152-65535. The server port is, first of all, ``server_port`` when given; else the port of
``PairInfo.server``; else the port found in the ``--target`` string (``port=6379``,
``tcp:host:6379``, ``host:6379``); else the listening port when it is TCP; else ``fallback_port``
(6379). If either side is IPv6 the whole conversation is IPv6, an IPv4 side being written as the
IPv4-mapped address ``::ffff:a.b.c.d``. MACs are locally administered constants
(``02:00:00:00:00:01`` client, ``02:00:00:00:00:02`` server).

Masking. ``mask(pair_id, direction, start, end)`` registers stream offsets (0 = the first payload
byte of that direction) whose bytes are replaced with ``mask_byte`` when they are written, and
returns how many bytes of the range were already written and can no longer be masked; ``data``
also takes chunk-relative ranges. Lengths never change, so sequence numbers and checksums stay
valid. Pending ranges are bounded (``MAX_MASK_RANGES`` per direction); a request past the bound
is refused and reported as unmaskable.

Nothing here raises on odd calls: an unknown pair id, an unknown direction or empty data gives
``b""``.
"""

from __future__ import annotations

import ipaddress
import re
import struct
import sys
from array import array

import attrs

from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Endpoint, PairInfo

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 262144
MAX_SEGMENT = 65000
MSS = 65495
WINDOW = 65535
WINDOW_SCALE = 14
MAX_MASK_RANGES = 1024

SYNTH_V4_CLIENT = "127.0.0.1"
SYNTH_V4_SERVER = "127.0.0.2"
SYNTH_V6_CLIENT = "fd00::1"
SYNTH_V6_SERVER = "fd00::2"
CLIENT_MAC = bytes.fromhex("020000000001")
SERVER_MAC = bytes.fromhex("020000000002")
SYNTH_CLIENT_PORTS = (49152, 65535)

GRACEFUL_HOWS = frozenset({"fin", "close", "closed", "done", "eof", "normal", "clean"})
SERVER_NAMES = frozenset({"server", "target", "upstream", SERVER_TO_CLIENT})

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_PROTO_TCP = 6
_TARGET_PORT = re.compile(r"(?:^|:)port=(\d+)(?::|$)")
_TRAILING_PORT = re.compile(r":(\d+)(?::[a-zA-Z]+=.*)?$")
_SWAP = sys.byteorder == "little"


_TCP = struct.Struct("!HHIIBBH4x")  # checksum and urgent pointer zero
_PSEUDO4 = struct.Struct("!xBH")
_PSEUDO6 = struct.Struct("!I3xB")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB")
_REC = struct.Struct("<IIII")
_U16 = struct.Struct("!H")


def _sum16(data: bytes) -> int:
    """Sum of the big-endian 16-bit words of ``data`` (odd length padded with a zero byte)."""
    if not data:
        return 0
    if len(data) % 2:
        data += b"\x00"
    words = array("H", data)
    if _SWAP:
        words.byteswap()
    return sum(words)


def _fold(total: int) -> int:
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum of 16-bit big-endian words, complemented."""
    return _fold(_sum16(data))


def _ip(host: str | None):
    if not host:
        return None
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def target_port(target: str) -> int | None:
    """The port named in a --target string, or None (``unix:``, no port)."""
    target = (target or "").strip()
    if target.isdigit():
        return int(target)
    if target.lower().startswith("unix:"):
        return None
    m = _TARGET_PORT.search(target) or _TRAILING_PORT.search(target)
    if m and 0 < int(m.group(1)) <= 65535:
        return int(m.group(1))
    return None


def _tcp_port(ep: Endpoint | None) -> int | None:
    if ep is not None and _ip(ep.host) is not None and 0 < ep.port <= 65535:
        return ep.port
    return None


@attrs.define
class _Side:
    mac: bytes
    ip: bytes
    port: int
    seq: int  # next sequence number this side will send
    ip_id: int = 0
    sent: int = 0  # payload bytes sent = stream offset of the next byte
    fin: bool = False
    masks: list = attrs.Factory(list)  # pending [start, end) stream ranges


@attrs.define
class _Conn:
    v6: bool
    client: _Side
    server: _Side


class PcapWriter:
    """Observer-shaped calls in, pcap record bytes out. See the module docstring."""

    def __init__(
        self,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        max_segment: int = MAX_SEGMENT,
        server_port: int | None = None,
        fallback_port: int = 6379,
        mask_byte: bytes = b"*",
        acks: bool = True,
    ):
        if not 1 <= max_segment <= 65495:
            raise ValueError("max_segment must be within 1..65495 (one IP datagram)")
        if len(mask_byte) != 1:
            raise ValueError("mask_byte must be exactly one byte")
        self.snaplen = snaplen
        self.max_segment = max_segment
        self.server_port = server_port
        self.fallback_port = fallback_port
        self.mask_byte = mask_byte
        self.acks = acks
        self.header_written = False
        self.records = 0
        self._conns: dict[int, _Conn] = {}
        self._next_client_port = SYNTH_CLIENT_PORTS[0]

    # -- file level -------------------------------------------------------------------------

    def header(self) -> bytes:
        """The global header; returns it once, then ``b""``."""
        if self.header_written:
            return b""
        self.header_written = True
        return struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, self.snaplen, LINKTYPE_ETHERNET)

    def is_open(self, pair_id: int) -> bool:
        return pair_id in self._conns

    def offset(self, pair_id: int, direction: str) -> int:
        """Payload bytes written so far in ``direction`` (the stream offset of the next byte)."""
        conn = self._conns.get(pair_id)
        side = self._sender(conn, direction) if conn else None
        return side.sent if side else 0

    # -- observer-shaped calls ----------------------------------------------------------------

    def pair_opened(self, pair: PairInfo, now: float) -> bytes:
        if pair.id in self._conns:
            return b""
        conn = self._new_conn(pair)
        self._conns[pair.id] = conn
        c, s = conn.client, conn.server
        opts = struct.pack("!BBHBBBB", 2, 4, MSS, 1, 3, 3, WINDOW_SCALE)
        out = [
            self._segment(conn, c, s, SYN, now, b"", opts, ack=0, window=WINDOW),
        ]
        c.seq = (c.seq + 1) & 0xFFFFFFFF
        out.append(self._segment(conn, s, c, SYN | ACK, now, b"", opts, window=WINDOW))
        s.seq = (s.seq + 1) & 0xFFFFFFFF
        out.append(self._segment(conn, c, s, ACK, now))
        return self.header() + b"".join(out)

    def data(self, pair_id: int, direction: str, data: bytes, now: float, mask=()) -> bytes:
        """Data segments for ``data`` plus the receiver's ACK.

        ``mask``: ``(start, end)`` ranges relative to this chunk to fill with ``mask_byte``, in
        addition to ranges registered with ``mask()``.
        """
        conn = self._conns.get(pair_id)
        if conn is None or not data:
            return b""
        src, dst = self._ends(conn, direction)
        if src is None:
            return b""
        data = self._apply_masks(src, bytes(data), mask)
        out = []
        step = self.max_segment
        for i in range(0, len(data), step):
            piece = data[i:i + step]
            out.append(self._segment(conn, src, dst, PSH | ACK, now, piece))
            src.seq = (src.seq + len(piece)) & 0xFFFFFFFF
        src.sent += len(data)
        if self.acks:
            out.append(self._segment(conn, dst, src, ACK, now))
        return self.header() + b"".join(out)

    def skip_to(self, pair_id: int, direction: str, offset: int) -> None:
        """The next byte written in ``direction`` is its stream byte ``offset``: the bytes
        before it that were not written (a store evicted them) are skipped in the sequence
        numbers, so a reader sees the gap (tshark: "previous segment not captured") rather
        than a stream that looks whole. Nothing when it is there already."""
        conn = self._conns.get(pair_id)
        src = self._sender(conn, direction) if conn else None
        if src is not None and offset > src.sent:
            src.seq = (src.seq + offset - src.sent) & 0xFFFFFFFF
            src.sent = offset

    def half_closed(self, pair_id: int, direction: str, now: float) -> bytes:
        conn = self._conns.get(pair_id)
        if conn is None:
            return b""
        src, dst = self._ends(conn, direction)
        if src is None or src.fin:
            return b""
        return self.header() + self._fin(conn, src, dst, now)

    def pair_closed(self, pair_id: int, summary: dict, now: float) -> bytes:
        conn = self._conns.pop(pair_id, None)
        if conn is None:
            return b""
        summary = summary or {}
        c, s = conn.client, conn.server
        if c.fin and s.fin:
            return b""
        how = str(summary.get("how") or "fin").lower()
        if how in GRACEFUL_HOWS:
            out = b""
            if not c.fin:
                out += self._fin(conn, c, s, now)
            if not s.fin:
                out += self._fin(conn, s, c, now)
            return self.header() + out
        by = str(summary.get("closed_by") or "").lower()
        src, dst = (s, c) if by in SERVER_NAMES or by.startswith("toxic ") else (c, s)
        return self.header() + self._segment(conn, src, dst, RST | ACK, now, window=0)

    def mask(self, pair_id: int, direction: str, start: int, end: int) -> int:
        """Fill stream bytes [start, end) of ``direction`` when written.

        Returns the number of bytes in the range that were already written (or could not be
        registered) and so remain in clear in the file; 0 means the whole range will be masked.
        """
        start, end = max(0, int(start)), int(end)
        if end <= start:
            return 0
        conn = self._conns.get(pair_id)
        src = self._sender(conn, direction) if conn else None
        if src is None:
            return end - start
        leaked = max(0, min(end, src.sent) - start)
        start = max(start, src.sent)
        if end > start:
            if len(src.masks) >= MAX_MASK_RANGES:
                return leaked + (end - start)
            src.masks.append((start, end))
        return leaked

    # -- internals ----------------------------------------------------------------------------

    def _sender(self, conn: _Conn, direction: str) -> _Side | None:
        return self._ends(conn, direction)[0]

    @staticmethod
    def _ends(conn: _Conn, direction: str):
        if direction == CLIENT_TO_SERVER:
            return conn.client, conn.server
        if direction == SERVER_TO_CLIENT:
            return conn.server, conn.client
        return None, None

    def _apply_masks(self, src: _Side, data: bytes, chunk_ranges) -> bytes:
        base, n = src.sent, len(data)
        ranges = [(base + a, base + b) for a, b in chunk_ranges or ()]
        ranges += src.masks
        if not ranges:
            return data
        buf = None
        for a, b in ranges:
            lo, hi = max(a, base), min(b, base + n)
            if lo < hi:
                if buf is None:
                    buf = bytearray(data)
                buf[lo - base:hi - base] = self.mask_byte * (hi - lo)
        src.masks = [(a, b) for a, b in src.masks if b > base + n]
        return bytes(buf) if buf is not None else data

    def _fin(self, conn: _Conn, src: _Side, dst: _Side, now: float) -> bytes:
        out = self._segment(conn, src, dst, FIN | ACK, now)
        src.seq = (src.seq + 1) & 0xFFFFFFFF
        src.fin = True
        if self.acks:
            out += self._segment(conn, dst, src, ACK, now)
        return out

    def server_port_of(self, pair: PairInfo) -> int:
        """The TCP port the server side of ``pair`` has in the file (see the module docstring)."""
        return (
            self.server_port
            or _tcp_port(pair.server)
            or target_port(pair.target)
            or _tcp_port(pair.listen)
            or self.fallback_port
        )

    def _new_conn(self, pair: PairInfo) -> _Conn:
        cip = _ip(pair.client.host if pair.client else None)
        sip = _ip(pair.server.host if pair.server else None)
        v6 = any(a is not None and a.version == 6 for a in (cip, sip))
        if v6:
            cip = _as_v6(cip) if cip is not None else ipaddress.IPv6Address(SYNTH_V6_CLIENT)
            sip = _as_v6(sip) if sip is not None else ipaddress.IPv6Address(SYNTH_V6_SERVER)
        else:
            cip = cip if cip is not None else ipaddress.IPv4Address(SYNTH_V4_CLIENT)
            sip = sip if sip is not None else ipaddress.IPv4Address(SYNTH_V4_SERVER)
        cport = _tcp_port(pair.client) or self._synth_client_port()
        sport = self.server_port_of(pair)
        # Deterministic initial sequence numbers, distinct per pair and side.
        cisn = (pair.id * 0x9E3779B1 + 0x1000) & 0xFFFFFFFF
        sisn = (pair.id * 0x85EBCA6B + 0x7F4A7C15) & 0xFFFFFFFF
        return _Conn(
            v6=v6,
            client=_Side(CLIENT_MAC, cip.packed, cport, cisn),
            server=_Side(SERVER_MAC, sip.packed, sport, sisn),
        )

    def _synth_client_port(self) -> int:
        port = self._next_client_port
        lo, hi = SYNTH_CLIENT_PORTS
        self._next_client_port = lo if port >= hi else port + 1
        return port

    def _segment(
        self,
        conn: _Conn,
        src: _Side,
        dst: _Side,
        flags: int,
        now: float,
        payload: bytes = b"",
        options: bytes = b"",
        ack: int | None = None,
        window: int = WINDOW,
    ) -> bytes:
        if ack is None:
            ack = dst.seq
        hlen = 20 + len(options)
        seg_len = hlen + len(payload)
        tcp = _TCP.pack(src.port, dst.port, src.seq, ack, (hlen // 4) << 4, flags, window) + options
        if conn.v6:
            pseudo = src.ip + dst.ip + _PSEUDO6.pack(seg_len, _PROTO_TCP)
        else:
            pseudo = src.ip + dst.ip + _PSEUDO4.pack(_PROTO_TCP, seg_len)
        # pseudo header and TCP header have even lengths, so the payload's words line up
        csum = _fold(_sum16(pseudo + tcp) + _sum16(payload))
        tcp = tcp[:16] + _U16.pack(csum) + tcp[18:]
        if conn.v6:
            ip = _IP6.pack(6 << 28, seg_len, _PROTO_TCP, 64) + src.ip + dst.ip
            ethertype = _ETH_IPV6
        else:
            ip = _IP4.pack(0x45, 0, 20 + seg_len, src.ip_id, 0x4000, 64, _PROTO_TCP, 0,
                           src.ip, dst.ip)
            ip = ip[:10] + _U16.pack(internet_checksum(ip)) + ip[12:]
            src.ip_id = (src.ip_id + 1) & 0xFFFF
            ethertype = _ETH_IPV4
        self.records += 1
        frame_len = 14 + len(ip) + seg_len
        usec = max(0, int(round((now or 0.0) * 1_000_000)))
        sec, usec = divmod(usec, 1_000_000)
        head = _REC.pack(min(sec, 0xFFFFFFFF), usec, min(frame_len, self.snaplen), frame_len)
        record = b"".join((head, dst.mac, src.mac, _U16.pack(ethertype), ip, tcp, payload))
        if frame_len > self.snaplen:
            record = record[:16 + self.snaplen]
        return record


def _as_v6(addr) -> ipaddress.IPv6Address:
    if addr.version == 6:
        return addr
    return ipaddress.IPv6Address("::ffff:" + str(addr))

