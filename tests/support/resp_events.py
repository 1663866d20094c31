"""The RESP conversation decoder's events as tests compare them: exchanges with their frame spans
worked out, whatever path parsed them."""

from __future__ import annotations

from playground.decode.respdecoder import C2S, Exchange


def with_spans(events) -> list:
    """``events`` with each :class:`Exchange`'s ``start``/``end`` as stream offsets (a command
    parsed within a pipelined run holds its run and index until asked), so that the events of
    different parsing paths (hiredis runs, the pure parser, other splits) compare equal."""
    return [e._replace(start=e.span[0], end=e.span[1]) if type(e) is Exchange else e
            for e in events]


def general_feed(conv, direction: str, data: bytes, now: float) -> list:
    """``conv.feed`` without its fast paths for a read that is one whole command or one whole
    reply: the general parsing loop every read took before them, the reference they are
    checked against."""
    if direction == C2S:
        return conv._feed_c2s(data, now)
    return conv._feed_s2c(data, now)
