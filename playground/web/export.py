"""One connection of the capture as a file: a classic pcap, or JSON lines.

Pure (no Twisted, no I/O): both read what ``playground.web.capture`` keeps of a connection.

* ``pcap_pieces``: the stored stream chunks (already redacted as the pcap sink redacts)
  as a synthesised TCP conversation made by ``playground.sinks.pcapwriter.PcapWriter``, as the
  ``--pcap`` sink makes it: handshake, data segments and their ACKs, FIN per half-close, and the
  close (FINs, or a RST for a reset). Bytes the capture evicted are not in it: the stream starts
  where the capture has it, its sequence numbers after the evicted bytes, so a reader of the
  file sees the gap (``evicted_ranges`` says which bytes went).
* ``jsonl_pieces``: the ``--json`` sink's records as far as the capture keeps them: ``open``,
  one line per exchange (its table row: request and reply as the view shows them) and
  ``close`` when the connection closed.

Both give the file a piece at a time (bounded work each: the routes stream them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from playground.proxy.observer import Endpoint, PairInfo
from playground.sinks.pcapwriter import PcapWriter
from playground.web.capture import C2S, CLOSED, S2C, Connection

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


def pcap_pieces(c: Connection, windows) -> Iterator[bytes]:
    """The pcap of connection ``c``, a piece at a time (see the module docstring): the header
    and the handshake, then a piece per window of its stored chunks. ``windows``: iterable of
    lists of chunks, in order (``Capture.stream_windows``: each read from the capture when
    asked for, so a long stream is not copied at once; it raises ``StreamEvicted`` when the
    capture evicted chunks it had not given: the file is cut there, not drawn with a gap nor
    ended as if whole)."""
    writer = PcapWriter()
    yield writer.header()
    if not c.server:  # never reached its target (a failed connect): no conversation to draw,
        return  # as in the --pcap file
    pair = PairInfo(c.id, endpoint(c.client), endpoint(c.listen), c.target, endpoint(c.server))
    yield writer.pair_opened(pair, c.started)
    summary = {"how": c.how, "closed_by": c.closed_by}
    for window in windows:
        out = []
        for ch in window:
            if ch.mark is None or ch.mark == "fin":  # at its offset: evicted bytes are a gap
                writer.skip_to(c.id, ch.direction, ch.offset)
            if ch.mark is None:
                out.append(writer.data(c.id, ch.direction, bytes(ch.data), ch.ts))
            elif ch.mark == "fin":
                out.append(writer.half_closed(c.id, ch.direction, ch.ts))
            else:  # close or rst: the connection's close summary says how
                for direction in (C2S, S2C):
                    writer.skip_to(c.id, direction, _stream_end(c, direction))
                out.append(writer.pair_closed(c.id, summary, ch.ts))
        yield b"".join(out)


def _stream_end(c: Connection, direction: str) -> int:
    return c.stream_evicted[direction] + len(c.c2s if direction == C2S else c.s2c)


def jsonl_pieces(c: Connection, describe, windows) -> Iterator[bytes]:
    """The JSON lines of connection ``c``, a piece per stored exchanges entry (at most
    ``capture.MAX_ROWS`` rows, or a pipelined run: bounded work each); ``describe``: an
    exchanges entry -> its rows; ``windows``: iterable of lists of its entries, in order
    (``Capture.exchange_windows``: each read from the capture when asked for, so a paused
    download keeps nothing the capture evicts alive; it raises ``StreamEvicted`` when the
    capture evicted entries not given yet). The rows up to the newest of when it starts, each
    once; the close line says the state of then."""
    opened = {"type": "open", "pair": c.id, "ts": c.started, "client": c.client,
              "listen": c.listen, "server": c.server, "target": c.target}
    closed = None if c.state != CLOSED else {
        "type": "close", "pair": c.id, "ts": c.ended, "client": c.client,
        "bytes_c2s": c.bytes_c2s, "bytes_s2c": c.bytes_s2c,
        "duration": round(c.duration(c.ended), 6), "closed_by": c.closed_by, "how": c.how,
        **({"reason": c.reason} if c.reason else {})}
    # the newest row's index now (this call's: the pieces are made later): later rows are not
    # this file's
    return _jsonl_lines(c.id, c.client, opened, closed, c.exchange_count, describe, windows)


def _jsonl_lines(pair, client, opened: dict, closed: dict | None, end: int, describe,
                 windows) -> Iterator[bytes]:
    _line = _json_line
    yield _line(opened)
    after = 0  # the index of the last row written (a growing entry comes again, grown)
    for window in windows:
        for entry in window:
            rows = [row for row in describe(entry) if after < row["index"] <= end]
            if rows:
                after = rows[-1]["index"]
                yield b"".join([_line({"type": row["kind"], "pair": pair, "ts": row["ts"],
                                       "client": client, "index": row["index"],
                                       "request": row["request"], "reply": row["reply"],
                                       "latency": row["latency"], "error": row["error"]})
                                for row in rows])
    if closed is not None:
        yield _line(closed)


def _json_line(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
