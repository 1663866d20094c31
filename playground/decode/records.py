"""What the decoder chain hands to its sinks: one record class per kind, and their JSON form.

Pure (no Twisted, no clock, no I/O). Records hold references to what the decoders produced (no
copies); sinks format only what they print. ``to_json(record, max_value)`` gives the stable JSON
object described in ``docs/json-schema.md`` (schema version ``SCHEMA``); change both together.
"""

from __future__ import annotations

import base64
import math
from itertools import repeat

import attrs

from playground.codec import values as resp

SCHEMA = 1
MAX_ITEMS = 1000  # elements of one aggregate shown in JSON before {"more": N}


@attrs.define(slots=True)
class Open:
    pair: int
    ts: float
    client: str
    listen: str
    server: str
    target: str


@attrs.define(slots=True)
class Close:
    pair: int
    ts: float
    client: str
    bytes_c2s: int
    bytes_s2c: int
    duration: float
    closed_by: str
    how: str
    reason: str = ""  # why the proxy closed it (a failed connect's error), or ""


@attrs.define(slots=True)
class HalfClose:
    pair: int
    ts: float
    direction: str


@attrs.define(slots=True)
class Detected:
    pair: int
    ts: float
    protocol: str  # resp | http | text | hex
    forced: bool  # chosen by --decode rather than detected


@attrs.define(slots=True)
class RedisExchange:
    pair: int
    ts: float
    client: str
    command: tuple  # bytes arguments, redacted when redaction is on
    reply: object  # a playground.codec.values value
    latency: float | None
    redacted: bool = False


@attrs.define(slots=True)
class FaultedRedisExchange(RedisExchange):
    """An exchange a fault (``fault``, its name) acted on: ``injected``, its reply is the
    fault's (the server never sent it); else the fault held it back (a delay). A type of its
    own, so the plain exchange keeps its fast paths in the sinks."""

    fault: str = ""
    injected: bool = True


@attrs.define(slots=True)
class RedisExchanges:
    """Ordinary commands answered by one read (pipelined traffic), in order: shown exactly as
    the ``RedisExchange`` records ``exchanges()`` gives (not redacted: ordinary commands hold
    no secret). One object instead of one per exchange; the chain makes them only when every
    sink says ``takes_runs``."""

    pair: int
    ts: float
    client: str
    commands: list  # each a sequence of bytes arguments (a list as the parser gave it, or a tuple)
    replies: list  # playground.codec.values values
    latencies: list
    # the replies' types when the decoder knows them (a frozenset: what set(map(type, replies))
    # gives), so that the sinks do not each make it again; None: not known yet (``types``)
    reply_types: frozenset | None = attrs.field(default=None, eq=False, repr=False)

    def types(self) -> frozenset:
        """The replies' types: the decoder's, or made here once for every sink."""
        kinds = self.reply_types
        if kinds is None:
            kinds = self.reply_types = frozenset(map(type, self.replies))
        return kinds

    def exchanges(self) -> list:
        n = len(self.commands)
        return list(map(RedisExchange, repeat(self.pair, n), repeat(self.ts, n),
                        repeat(self.client, n), map(tuple, self.commands), self.replies,
                        self.latencies, repeat(False, n)))


def expand(records) -> list:
    """``records`` with every ``RedisExchanges`` replaced by its exchanges."""
    out = []
    for r in records:
        if type(r) is RedisExchanges:
            out += r.exchanges()
        else:
            out.append(r)
    return out


@attrs.define(slots=True)
class RedisPush:
    pair: int
    ts: float
    value: object  # the push's items (tuple) or another out-of-band value


@attrs.define(slots=True)
class RedisUnanswered:
    pair: int
    ts: float
    client: str
    command: tuple
    redacted: bool = False


@attrs.define(slots=True)
class HttpExchange:
    pair: int
    ts: float
    client: str
    method: bytes | None
    target: bytes | None
    version: bytes | None
    status: int | None  # None: unanswered
    reason: bytes
    latency: float | None
    request_headers: tuple
    response_headers: tuple
    request_body_size: int
    response_body_size: int
    content_type: bytes | None
    request_preview: bytes
    response_preview: bytes
    interim: tuple = ()
    complete: bool = True
    fault: str | None = None  # the fault that acted on the response
    injected: bool = False  # the fault's own response (the server sent none)


@attrs.define(slots=True)
class TextLine:
    pair: int
    ts: float
    direction: str
    data: bytes
    offset: int
    partial: bool


@attrs.define(slots=True)
class HexChunk:
    pair: int
    ts: float
    direction: str
    data: bytes  # the whole chunk; sinks show up to their bound
    offset: int


@attrs.define(slots=True)
class Undecodable:
    pair: int
    ts: float
    direction: str
    protocol: str
    reason: str
    offset: int | None


@attrs.define(slots=True)
class Notice:
    """Something the chain wants a reader to know (a protocol switch, a dropped backlog)."""

    pair: int
    ts: float
    message: str


# -- JSON ----------------------------------------------------------------------------------


def json_bytes(data: bytes, limit: int = 0):
    """A string when ``data`` is whole valid UTF-8; otherwise an object with ``base64`` (not
    UTF-8) or ``text`` (UTF-8), plus ``length`` when cut at ``limit`` bytes."""
    cut = bool(limit) and len(data) > limit
    part = data[:limit] if cut else data
    try:
        text = part.decode("utf-8")
        if not cut:
            return text
        out = {"text": text}
    except UnicodeDecodeError as e:
        if cut and e.reason == "unexpected end of data" and e.start >= len(part) - 3:
            out = {"text": part[: e.start].decode("utf-8")}  # cut inside a character
        else:
            out = {"base64": base64.b64encode(part).decode("ascii")}
    if cut:
        out["length"] = len(data)
    return out


def json_value(value, limit: int = 0, depth: int = 0):
    """A RESP value (``playground.codec.values`` model) as JSON; see docs/json-schema.md."""
    if isinstance(value, bytes):
        return json_bytes(value, limit)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"double": str(value)}
    if depth > 32:
        return {"more": 1}
    if isinstance(value, (list, tuple)):
        return _json_items(value, limit, depth)
    if isinstance(value, resp.Simple):
        return {"simple": json_bytes(value.value, limit)}
    if isinstance(value, resp.Error):
        return {"error": json_bytes(value.value, limit)}
    if isinstance(value, resp.Map):
        pairs = [[json_value(k, limit, depth + 1), json_value(v, limit, depth + 1)]
                 for k, v in value.items[:MAX_ITEMS]]
        if len(value.items) > MAX_ITEMS:
            pairs.append({"more": len(value.items) - MAX_ITEMS})
        return {"map": pairs}
    if isinstance(value, resp.Set):
        return {"set": _json_items(value.items, limit, depth)}
    if isinstance(value, resp.Push):
        return {"push": _json_items(value.items, limit, depth)}
    if isinstance(value, resp.BigNumber):
        return {"bignum": str(value.value)}
    if isinstance(value, resp.Verbatim):
        return {"verbatim": json_bytes(value.text, limit),
                "format": value.format.decode("latin-1")}
    if isinstance(value, resp.Attributed):
        return {"attributes": json_value(value.attributes, limit, depth + 1),
                "value": json_value(value.value, limit, depth + 1)}
    if isinstance(value, resp.Inline):
        return _json_items(value.args, limit, depth)
    return {"unknown": repr(value)[:200]}


def _json_items(items, limit: int, depth: int) -> list:
    out = [json_value(v, limit, depth + 1) for v in items[:MAX_ITEMS]]
    if len(items) > MAX_ITEMS:
        out.append({"more": len(items) - MAX_ITEMS})
    return out


def _headers(headers, limit: int) -> list:
    return [[json_bytes(k), json_bytes(v, limit)] for k, v in headers]


def json_ts(seconds):
    """A time in seconds since the epoch, to the microsecond: the value the JSON sink writes
    as ``%d.%06d`` of ``divmod(ts_micros(seconds), 10**6)``."""
    us = ts_micros(seconds)
    return seconds if us is None else us / 1_000_000


def ts_micros(seconds) -> int | None:
    """Microseconds since the epoch, or None for what is not a plain time (JSON then writes the
    number as it is)."""
    if type(seconds) is float and 0.0 <= seconds < 9e9:
        return round(seconds * 1e6)
    return None


def json_latency(seconds):
    """A latency in seconds, to the nanosecond (JSON sinks may write it as ``%.9f``)."""
    if type(seconds) is float and -1e6 < seconds < 1e6:
        return round(seconds, 9)
    return seconds


def _fault_json(r) -> dict:
    """The keys of an exchange a fault acted on: ``fault``, and ``injected`` when it is so."""
    return {"fault": r.fault, "injected": True} if r.injected else {"fault": r.fault}


def to_json(r, limit: int = 0) -> dict:
    """The JSON object of record ``r``; bytes values are cut at ``limit`` bytes (0 = whole)."""
    kind = type(r)
    if kind is RedisExchange:
        return {"type": "redis", "pair": r.pair, "ts": json_ts(r.ts), "client": r.client,
                "command": _json_items(r.command, limit, 0),
                "reply": json_value(r.reply, limit), "latency": json_latency(r.latency),
                "redacted": r.redacted}
    if kind is FaultedRedisExchange:  # the plain exchange's object and the fault's keys
        plain = RedisExchange(r.pair, r.ts, r.client, r.command, r.reply, r.latency, r.redacted)
        return {**to_json(plain, limit), **_fault_json(r)}
    if kind is HttpExchange:
        if r.fault is not None:
            return {**to_json(attrs.evolve(r, fault=None), limit), **_fault_json(r)}
        return {"type": "http", "pair": r.pair, "ts": json_ts(r.ts), "client": r.client,
                "method": _text(r.method), "target": json_bytes(r.target or b"", limit),
                "version": _text(r.version), "status": r.status, "reason": _text(r.reason),
                "latency": json_latency(r.latency), "interim": list(r.interim),
                "complete": r.complete,
                "request_headers": _headers(r.request_headers, limit),
                "response_headers": _headers(r.response_headers, limit),
                "request_body_size": r.request_body_size,
                "response_body_size": r.response_body_size,
                "content_type": _text(r.content_type),
                "request_preview": json_bytes(r.request_preview),
                "response_preview": json_bytes(r.response_preview)}
    if kind is TextLine:
        return {"type": "text", "pair": r.pair, "ts": json_ts(r.ts), "direction": r.direction,
                "offset": r.offset, "line": json_bytes(r.data, limit), "partial": r.partial}
    if kind is HexChunk:
        return {"type": "bytes", "pair": r.pair, "ts": json_ts(r.ts), "direction": r.direction,
                "offset": r.offset, "data": _b64(r.data, limit)}
    if kind is RedisPush:
        return {"type": "redis_push", "pair": r.pair, "ts": json_ts(r.ts),
                "value": json_value(r.value, limit)}
    if kind is RedisUnanswered:
        return {"type": "redis_unanswered", "pair": r.pair, "ts": json_ts(r.ts), "client": r.client,
                "command": _json_items(r.command, limit, 0), "redacted": r.redacted}
    if kind is Open:
        return {"type": "open", "pair": r.pair, "ts": json_ts(r.ts), "client": r.client,
                "listen": r.listen, "server": r.server, "target": r.target}
    if kind is Close:
        return {"type": "close", "pair": r.pair, "ts": json_ts(r.ts), "client": r.client,
                "bytes_c2s": r.bytes_c2s, "bytes_s2c": r.bytes_s2c, "duration": r.duration,
                "closed_by": r.closed_by, "how": r.how, **({"reason": r.reason} if r.reason else {})}
    if kind is HalfClose:
        return {"type": "half_close", "pair": r.pair, "ts": json_ts(r.ts), "direction": r.direction}
    if kind is Detected:
        return {"type": "protocol", "pair": r.pair, "ts": json_ts(r.ts), "protocol": r.protocol,
                "forced": r.forced}
    if kind is Undecodable:
        return {"type": "undecodable", "pair": r.pair, "ts": json_ts(r.ts), "direction": r.direction,
                "protocol": r.protocol, "reason": r.reason, "offset": r.offset}
    if kind is Notice:
        return {"type": "notice", "pair": r.pair, "ts": json_ts(r.ts), "message": r.message}
    raise TypeError(f"not a record: {r!r}")


def _text(data: bytes | None):
    return None if data is None else data.decode("utf-8", "replace")


def _b64(data: bytes, limit: int) -> dict:
    part = data[:limit] if limit and len(data) > limit else data
    out = {"base64": base64.b64encode(part).decode("ascii")}
    if len(part) < len(data):
        out["length"] = len(data)
    return out
