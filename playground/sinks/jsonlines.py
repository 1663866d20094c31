"""``--json FILE``: every record as one JSON object per line (schema: docs/json-schema.md).

An ``IService``: ``startService`` opens the file for appending (``-`` is the process's stdout),
``stopService`` writes what is queued, flushes and closes. Records are encoded in batches
(``batching.BufferedSink``: at most ``FLUSH_DELAY`` after the first) and each batch is written in a
single ``write()`` of whole lines, so a reader or a log rotation never sees half a record at a
flush point.

The common Redis exchange (printable ASCII arguments, a simple, bulk, integer or nil reply) is
written by hand, byte for byte what ``json`` would write for ``records.to_json`` (the common
pipelined run, one latency and one reply for all or a printable bulk string each, in one go);
anything else goes through ``to_json`` and the ``json`` encoder.
"""

from __future__ import annotations

import json
import sys
from itertools import repeat as _repeat
from operator import mod as _mod

from playground.codec import values as resp
from playground.decode import records as R
from playground.decode.records import to_json
from playground.sinks.batching import BufferedSink
from playground.sinks.plain import PlainReplies, is_plain, plain_batch, remember

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False,
                           allow_nan=False).encode
_encode_ascii = json.JSONEncoder(separators=(",", ":"), check_circular=False,
                                 allow_nan=False).encode
_EXCHANGE = R.RedisExchange
_ts_micros = R.ts_micros
_RUN = R.RedisExchanges
_UNSET = object()
_ARGS_JOIN = b'","'.join  # a command's plain arguments, inside its JSON list's quotes
_BYTES_ONLY = {bytes}
_SCALARS = frozenset({resp.Simple, bytes, int, type(None)})  # equal ones are written alike
_AROUND = 1024  # heads remembered (pair and client), at most


def _line(r, lim: int) -> bytes:
    return _utf8(to_json(r, lim))


def _utf8(value) -> bytes:
    """``value`` as one line of JSON in UTF-8; a string with a lone surrogate (a path from a
    non-UTF-8 argv) has it, and the line its other non-ASCII characters, as JSON escapes
    (``\\udcff``): surrogatepass wrote bytes that are no UTF-8, which strict readers refuse."""
    text = _encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(value).encode("ascii")


def _plain_items(items, lim: int):
    """``["a","b"]`` for a tuple/list of short printable-ASCII bytes, else None."""
    if not items:
        return b"[]" if type(items) in (tuple, list) else None
    try:
        joined = b"".join(items)
    except TypeError:  # not all bytes
        return None
    if lim and len(joined) > lim and max(map(len, items)) > lim:
        return None
    if len(items) > R.MAX_ITEMS or not is_plain(joined):
        return None
    return b'["' + b'","'.join(items) + b'"]'


def _latency_json(latency):
    """What records.to_json gives, written as %.9f (to the ns); None: the general encoder's."""
    if type(latency) is float and -1e6 < latency < 1e6:
        return b"%.9f" % latency
    return b"null" if latency is None else None


class JsonSink(BufferedSink):
    label = "json"
    takes_runs = True  # R.RedisExchanges: see _run

    def __init__(self, path: str, max_value: int = 200, reactor=None):
        super().__init__(reactor)
        self.path = path
        self.name = f"json@{path}"
        self.max_value = max_value
        self._owned = path != "-"
        self._client: dict = {}  # client address -> its JSON
        self._around: dict = {}  # (pair, client) -> an exchange head's bytes around its ts
        self._replies = PlainReplies(b'{"simple":"%s"}', b"%d", b"null", items=_plain_items)

    def open_output(self):
        if self._owned:
            return open(self.path, "ab")
        return (sys.__stdout__ or sys.stdout).buffer

    def close_output(self):
        if self._owned:
            self.out.close()
        else:
            self.out.flush()

    def format_batch(self, batch: list, look: tuple | None = None) -> bytes:
        lim = self.max_value
        # One check for the whole batch: are all the exchanges' arguments short printable
        # ASCII? Then no record needs its own.
        args_plain, fewest, most, bulks_plain = look or plain_batch(batch, lim)
        plain = args_plain and fewest > 0 and most <= R.MAX_ITEMS
        lines = []
        append = lines.append
        join = b"".join
        reply_json = self._replies
        # Records of one feed share pair, ts and client; pipelined replies share the latency.
        last_pair = last_ts = last_client = head = None
        last_latency = last_reply = _UNSET
        latency_json = b""
        text = None
        for r in batch:
            if type(r) is not _EXCHANGE:
                if type(r) is _RUN:
                    self._run(r, append, plain and bulks_plain, plain)
                    last_pair = None  # the next exchange makes its own head
                else:
                    append(_line(r, lim))
                continue
            args = r.command
            if not plain:
                try:
                    joined = join(args)
                except TypeError:  # not all bytes
                    append(_line(r, lim))
                    continue
                if not args or not is_plain(joined) or len(args) > R.MAX_ITEMS or (
                    lim and len(joined) > lim and max(map(len, args)) > lim
                ):
                    append(_line(r, lim))
                    continue
            if r.reply is not last_reply:  # +OK replies are one object
                last_reply = r.reply
                text = reply_json(last_reply, lim, bulks_plain)
            reply = text
            if reply is None:
                append(_line(r, lim))
                continue
            latency = r.latency
            if latency != last_latency:
                last_latency = latency
                latency_json = _latency_json(latency)
            if latency_json is None:
                append(_line(r, lim))
                continue
            ts = r.ts
            if ts is not last_ts or r.pair != last_pair or r.client is not last_client:
                head = self._head(r.pair, ts, r.client)
                if head is None:
                    append(_line(r, lim))
                    continue
                last_ts, last_pair, last_client = ts, r.pair, r.client
            append(b'%s%s"],"reply":%s,"latency":%s,"redacted":%s}' % (
                head, b'","'.join(args), reply, latency_json,
                b"true" if r.redacted else b"false"))
        append(b"")
        return b"\n".join(lines)

    def _run(self, r, append, plain: bool, args_plain: bool) -> None:
        """The lines of an ``R.RedisExchanges``: as ``format_batch`` makes them for exchanges,
        the head (pair, ts, client) made once. ``plain``: every argument and bulk reply of the
        batch is short printable ASCII (checked once by ``plain_batch``)."""
        lim = self.max_value
        head = self._head(r.pair, r.ts, r.client) if args_plain else None
        if head is None:
            append(self.format_batch(r.exchanges())[:-1])  # exchange by exchange
            return
        if self._whole_run(r, append, head, plain):
            return
        ts = r.ts
        reply_json = self._replies
        last_latency = last_reply = _UNSET
        latency_json = text = None
        for args, reply, latency in zip(r.commands, r.replies, r.latencies, strict=True):
            if reply is not last_reply:  # pipelined +OK replies are one object
                last_reply = reply
                # a checked bulk reply is a JSON string as it is: no call for the common GET
                text = b'"' + reply + b'"' if plain and type(reply) is bytes else (
                    reply_json(reply, lim, plain))
            if latency != last_latency:
                last_latency = latency
                latency_json = _latency_json(latency)
            if text is None or latency_json is None:
                append(_line(R.RedisExchange(r.pair, ts, r.client, tuple(args), reply, latency, False),
                             lim))
                continue
            append(b'%s%s"],"reply":%s,"latency":%s,"redacted":false}' % (
                head, b'","'.join(args), text, latency_json))

    def _whole_run(self, r, append, head: bytes, plain: bool) -> bool:
        """The common run's lines in one go, C-level maps and joins, no Python per line: one
        latency, and its replies one reply (pipelined ``+OK``) or each a checked bulk string
        (pipelined ``GET``). False when the run is not that (``_run`` makes it line by line);
        the caller checked its arguments (``plain_batch``) and made its ``head``."""
        replies, latencies = r.replies, r.latencies
        n = len(replies)
        if latencies.count(latencies[0]) != n:
            return False
        latency_json = _latency_json(latencies[0])
        kinds = r.types()
        if latency_json is None:
            return False
        first = replies[0]
        tail = b',"latency":%s,"redacted":false}' % latency_json
        shown = map(_ARGS_JOIN, r.commands)
        if replies.count(first) == n and kinds <= _SCALARS:  # equal replies of one type
            text = b'"' + first + b'"' if plain and type(first) is bytes else (
                self._replies(first, self.max_value, plain))
            if text is None:
                return False
            after = b'"],"reply":%s%s' % (text, tail)
            append(head + (after + b"\n" + head).join(shown) + after)
        elif plain and kinds == _BYTES_ONLY:
            # operator.mod: no method wrapper per call
            lines = map(_mod, _repeat(b'%s"],"reply":"%s"'), zip(shown, replies, strict=True))
            append(head + (tail + b"\n" + head).join(lines) + tail)
        else:
            return False
        return True

    def _head(self, pair, ts, client) -> bytes | None:
        """An exchange line up to its first argument, ``ts`` as records.json_ts gives it; None
        when ``ts`` is not a plain time (the general encoder writes that line)."""
        us = _ts_micros(ts)
        if us is None:
            return None
        around = self._around.get((pair, client)) or self._around_ts(pair, client)
        return b"%s%d.%06d%s" % (around[0], us // 1_000_000, us % 1_000_000, around[1])

    def _around_ts(self, pair, client) -> tuple[bytes, bytes]:
        """The head's bytes before and after ``ts`` for one pair and client (remembered: an
        unpipelined exchange has a ``ts`` of its own, its pair and client are the last's)."""
        around = self._around
        if len(around) >= _AROUND:  # pairs come and go: the live ones are back at once
            around.clear()
        parts = around[pair, client] = (b'{"type":"redis","pair":%d,"ts":' % pair,
                                        b',"client":%s,"command":["' % self._client_json(client))
        return parts

    def _client_json(self, client) -> bytes:
        return self._client.get(client) or remember(
            self._client, client, _utf8(client))
