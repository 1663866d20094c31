"""Hand-built captures: TCP segments framed with dpkt into classic pcap or pcapng files, so a
test says exactly which segment comes when (reordered, repeated, missing)."""

from __future__ import annotations

import socket

import dpkt

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 6379)
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def frame(src: tuple, dst: tuple, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """One Ethernet frame holding one IPv4 (or IPv6, for ``:`` hosts) TCP segment."""
    tcp = dpkt.tcp.TCP(sport=src[1], dport=dst[1], seq=seq % 2**32, ack=ack % 2**32,
                       flags=flags, data=payload)
    if ":" in src[0]:
        ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src[0]),
                          dst=socket.inet_pton(socket.AF_INET6, dst[0]), nxt=6, hlim=64,
                          data=tcp, plen=len(bytes(tcp)))
        etype = dpkt.ethernet.ETH_TYPE_IP6
    else:
        ip = dpkt.ip.IP(src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=6, data=tcp)
        ip.len = len(bytes(ip))
        etype = dpkt.ethernet.ETH_TYPE_IP
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=ip))


class Conversation:
    """Segments of one connection, numbered as TCP numbers them, for a test to pick from."""

    def __init__(self, client: tuple = CLIENT, server: tuple = SERVER, isn_c: int = 1000,
                 isn_s: int = 5000):
        self.client, self.server = client, server
        self.seq = {True: isn_c + 1, False: isn_s + 1}
        self.isn = {True: isn_c, False: isn_s}

    def handshake(self) -> list[bytes]:
        c, s = self.client, self.server
        return [frame(c, s, self.isn[True], 0, SYN),
                frame(s, c, self.isn[False], self.isn[True] + 1, SYN | ACK),
                frame(c, s, self.isn[True] + 1, self.isn[False] + 1, ACK)]

    def data(self, from_client: bool, payload: bytes) -> bytes:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        seq = self.seq[from_client]
        self.seq[from_client] += len(payload)
        return frame(src, dst, seq, self.seq[not from_client], PSH | ACK, payload)

    def fin(self, from_client: bool) -> bytes:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        seq = self.seq[from_client]
        self.seq[from_client] += 1
        return frame(src, dst, seq, self.seq[not from_client], FIN | ACK)


def write_pcap(path, frames: list[bytes], start: float = 1_700_000_000.0,
               pcapng: bool = False) -> None:
    """``frames`` as a classic pcap (or pcapng) file, one record each, 1 ms apart."""
    with open(path, "wb") as f:
        writer = dpkt.pcapng.Writer(f) if pcapng else dpkt.pcap.Writer(f)
        for i, data in enumerate(frames):
            writer.writepkt(data, ts=start + i / 1000)
