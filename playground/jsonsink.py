"""``--json FILE``: every record as one JSON object per line (schema: docs/json-schema.md).

An ``IService``: ``startService`` opens the file for appending (``-`` is the process's stdout),
``stopService`` writes what is queued, flushes and closes. Records are encoded in batches
(``console.BufferedSink``: at most ``FLUSH_DELAY`` after the first) and each batch is written in a
single ``write()`` of whole lines, so a reader or a log rotation never sees half a record at a
flush point.

The common Redis exchange (printable ASCII arguments, a simple, bulk, integer or nil reply) is
written by hand, byte for byte what ``json`` would write for ``records.to_json``; anything else
goes through ``to_json`` and the ``json`` encoder.
"""

from __future__ import annotations

import json
import math
import re
import sys

from playground import records as R
from playground import resp
from playground.console import BufferedSink
from playground.records import to_json

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False,
                           allow_nan=False).encode
# Bytes that JSON writes as they are inside a string: printable ASCII but '"' and '\'.
_NOT_PLAIN = re.compile(rb'[^\x20\x21\x23-\x5b\x5d-\x7e]')
_EXCHANGE = R.RedisExchange
_SIMPLE = resp.Simple
_CACHED = 256  # simple-string replies and client addresses remembered, each
_UNSET = object()


def _line(r, lim: int) -> bytes:
    return _encode(to_json(r, lim)).encode("utf-8", "surrogatepass")


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
    if len(items) > R.MAX_ITEMS or _NOT_PLAIN.search(joined) is not None:
        return None
    return b'["' + b'","'.join(items) + b'"]'


class JsonSink(BufferedSink):
    label = "json"

    def __init__(self, path: str, max_value: int = 200, reactor=None):
        super().__init__(reactor)
        self.path = path
        self.name = f"json@{path}"
        self.max_value = max_value
        self._owned = path != "-"
        self._simple: dict = {}  # Simple value -> its JSON
        self._client: dict = {}  # client address -> its JSON

    def open_output(self):
        if self._owned:
            return open(self.path, "ab")
        return (sys.__stdout__ or sys.stdout).buffer

    def close_output(self):
        if self._owned:
            self.out.close()
        else:
            self.out.flush()

    def format_batch(self, batch: list) -> bytes:
        lim = self.max_value
        lines = []
        append = lines.append
        join = b"".join
        not_plain = _NOT_PLAIN.search
        simple = self._simple
        reply_json = self._reply
        # Records of one feed share pair, ts and client; pipelined replies share the latency.
        last_pair = last_ts = last_client = head = None
        last_latency = _UNSET
        latency_json = b""
        for r in batch:
            if type(r) is not _EXCHANGE:
                append(_line(r, lim))
                continue
            args = r.command
            try:
                joined = join(args)
            except TypeError:  # not all bytes
                append(_line(r, lim))
                continue
            if not args or not_plain(joined) is not None or len(args) > R.MAX_ITEMS or (
                lim and len(joined) > lim and max(map(len, args)) > lim
            ):
                append(_line(r, lim))
                continue
            reply = r.reply
            if type(reply) is _SIMPLE:
                reply = simple.get(reply.value) or reply_json(reply, lim)
            else:
                reply = reply_json(reply, lim)
            if reply is None:
                append(_line(r, lim))
                continue
            latency = r.latency
            if latency != last_latency:
                last_latency = latency
                if latency is None:
                    latency_json = b"null"
                elif type(latency) is float and math.isfinite(latency):
                    latency_json = b"%r" % latency
                else:
                    latency_json = None
            if latency_json is None:
                append(_line(r, lim))
                continue
            ts = r.ts
            if ts is not last_ts or r.pair != last_pair or r.client is not last_client:
                if type(ts) is not float or not math.isfinite(ts):
                    append(_line(r, lim))
                    continue
                last_ts, last_pair, last_client = ts, r.pair, r.client
                head = b'{"type":"redis","pair":%d,"ts":%r,"client":%s,"command":["' % (
                    r.pair, ts, self._client_json(r.client))
            append(b'%s%s"],"reply":%s,"latency":%s,"redacted":%s}' % (
                head, b'","'.join(args), reply, latency_json,
                b"true" if r.redacted else b"false"))
        append(b"")
        return b"\n".join(lines)

    def _client_json(self, client) -> bytes:
        out = self._client.get(client)
        if out is None:
            out = _encode(client).encode("utf-8", "surrogatepass")
            if len(self._client) < _CACHED:
                self._client[client] = out
        return out

    def _reply(self, v, lim: int):
        """The JSON of a common reply, or None (then ``to_json`` does it)."""
        t = type(v)
        if t is bytes:
            if (lim and len(v) > lim) or _NOT_PLAIN.search(v) is not None:
                return None
            return b'"' + v + b'"'
        if t is _SIMPLE:
            value = v.value
            out = self._simple.get(value)
            if out is None:
                if (lim and len(value) > lim) or _NOT_PLAIN.search(value) is not None:
                    return None
                out = b'{"simple":"' + value + b'"}'
                if len(self._simple) < _CACHED:
                    self._simple[value] = out
            return out
        if t is int:
            return b"%d" % v
        if v is None:
            return b"null"
        if t is list:
            return _plain_items(v, lim)
        return None
