"""One connection of the capture as a file: a classic pcap, or JSON lines.

Pure (no Twisted, no I/O): both read what ``playground.web.capture`` keeps of a connection.

* ``connection_pcap``: the stored stream chunks (already redacted as the pcap sink redacts)
  as a synthesised TCP conversation made by ``playground.sinks.pcapwriter.PcapWriter``, as the
  ``--pcap`` sink makes it: handshake, data segments and their ACKs, FIN per half-close, and the
  close (FINs, or a RST for a reset). Bytes the capture evicted are not in it: the stream starts
  where the capture has it (``evicted_ranges`` says which bytes went).
* ``connection_jsonl``: the ``--json`` sink's records as far as the capture keeps them: ``open``,
  one line per exchange (its table row: request and reply as the view shows them) and
  ``close`` when the connection closed.
"""

from __future__ import annotations

import json
import re

from playground.proxy.observer import Endpoint, PairInfo
from playground.sinks.pcapwriter import PcapWriter
from playground.web.capture import CLOSED, Connection

_HOST_PORT = re.compile(r"^\[?(?P<host>[^\[\]]*?)\]?:(?P<port>\d+)$")


def endpoint(text: str) -> Endpoint | None:
    """An address as logs show it (``127.0.0.1:6379``, ``[::1]:6379``, ``unix:PATH``) back to
    an ``Endpoint``; None when empty or not an address."""
    if text.startswith("unix:"):
        return Endpoint(text[5:], 0)
    m = _HOST_PORT.match(text)
    return Endpoint(m["host"], int(m["port"])) if m else None


def evicted_ranges(c: Connection) -> str:
    """``c2s 0-N, s2c 0-M``: the stream bytes the capture no longer has ("" when none)."""
    return ", ".join(f"{d} 0-{n - 1}" for d, n in sorted(c.stream_evicted.items()) if n)


def connection_pcap(c: Connection, chunks) -> bytes:
    """The pcap of connection ``c`` from its stored ``chunks`` (see the module docstring)."""
    return b"".join(pcap_parts(c, chunks))


def pcap_parts(c: Connection, chunks):
    """``connection_pcap`` a record or so at a time (a stored chunk's at most), for an answer
    written over several reactor turns."""
    writer = PcapWriter()
    pair = PairInfo(c.id, endpoint(c.client), endpoint(c.listen), c.target,
                    endpoint(c.server) if c.server else None)
    yield writer.header()
    if not c.server:  # never reached its target (a failed connect): no conversation to draw,
        return  # as in the --pcap file
    yield writer.pair_opened(pair, c.started)
    for ch in chunks:
        if ch.mark is None:
            yield writer.data(c.id, ch.direction, bytes(ch.data), ch.ts)
        elif ch.mark == "fin":
            yield writer.half_closed(c.id, ch.direction, ch.ts)
        else:  # close or rst: the connection's close summary says how
            yield writer.pair_closed(c.id, {"how": c.how, "closed_by": c.closed_by}, ch.ts)


def connection_jsonl(c: Connection, describe) -> bytes:
    """The JSON lines of connection ``c``; ``describe``: an exchanges entry -> its rows."""
    return b"".join(jsonl_parts(c, describe))


def jsonl_parts(c: Connection, describe):
    """``connection_jsonl`` a line at a time, for an answer written over several turns."""
    def line(record) -> bytes:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"

    yield line({"type": "open", "pair": c.id, "ts": c.started, "client": c.client,
                "listen": c.listen, "server": c.server, "target": c.target})
    for entry in list(c.exchanges):
        for row in describe(entry):
            yield line({"type": row["kind"], "pair": c.id, "ts": row["ts"],
                        "client": c.client, "index": row["index"],
                        "request": row["request"], "reply": row["reply"],
                        "latency": row["latency"], "error": row["error"]})
    if c.state == CLOSED:
        yield line({"type": "close", "pair": c.id, "ts": c.ended, "client": c.client,
                    "bytes_c2s": c.bytes_c2s, "bytes_s2c": c.bytes_s2c,
                    "duration": round(c.duration(c.ended), 6),
                    "closed_by": c.closed_by, "how": c.how,
                    **({"reason": c.reason} if c.reason else {})})
