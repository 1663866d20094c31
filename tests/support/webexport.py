"""A connection's download from the web view at once: the pieces the routes stream, joined
(what a test compares a streamed or cut download with)."""

from __future__ import annotations

from playground.web.export import jsonl_pieces, pcap_pieces


def connection_pcap(c, chunks) -> bytes:
    """The pcap of connection ``c`` from its stored ``chunks``, at once."""
    return b"".join(pcap_pieces(c, [chunks]))


def connection_jsonl(c, describe) -> bytes:
    """The JSON lines of connection ``c``, at once; ``describe``: an exchanges entry -> its
    rows."""
    return b"".join(jsonl_pieces(c, describe, [c.exchanges]))
