"""The web view's sink: the decoder chain's records and its byte path into a ``capture.Capture``.

``WebSink`` is two things to the chain (``playground.decode.chain.Chain``):

* a record sink (``emit``, ``emit_many``, ``takes_runs``, like ``playground.sinks.statssink``):
  exchanges become rows of text made with the console's formatting (``set foo "bar"`` ->
  ``+OK``, bounded at ``max_value`` bytes a value), the detected protocol is noted, other
  records are ignored at the cost of one type check;
* a byte consumer, the pcap sink's contract (``pair_opened``, ``data``, ``half_closed``,
  ``pair_closed``, ``mask``, ``decoded``): the chain hands it the same bytes it hands the pcap
  sink, with the same hold-back and the same masks (``playground.decode.bytetee.ByteTee`` when
  both are on), so the follow-stream view is redacted exactly as the pcap is. Without decoding
  (``--decode none --no-redact``) it is the proxy's observer itself.
"""

from __future__ import annotations

from playground.codec import resp
from playground.decode import records as R
from playground.sinks.console import command_summary, format_args, format_value
from playground.web.capture import Capture

_EXCHANGE = R.RedisExchange
_RUN = R.RedisExchanges
_HTTP = R.HttpExchange
_PUSH = R.RedisPush
_UNANSWERED = R.RedisUnanswered
_DETECTED = R.Detected
_UNDECODABLE = R.Undecodable
_NOTICE = R.Notice
_ERROR = resp.Error
_SIMPLE = resp.Simple


def command_size(command) -> int | None:
    """The bytes of ``command`` sent as a RESP array of bulk strings (what clients send)."""
    size = 3 + len(str(len(command)))
    for a in command:
        if not isinstance(a, bytes):
            return None
        n = len(a)  # a value the decoder cut (resp.Truncated) says its full length
        size += 5 + len(str(n)) + n
    return size


def reply_size(value) -> int | None:
    """The bytes of a simple reply on the wire; None where the form is ambiguous or big
    (an aggregate, a nil: RESP2 and RESP3 spell them differently)."""
    kind = type(value)
    if kind is _SIMPLE or kind is _ERROR:
        return 3 + len(value.value)
    if kind is int:
        return 3 + len(str(value))
    if isinstance(value, bytes):
        n = len(value)
        return 5 + len(str(n)) + n
    return None


class WebSink:
    """See the module docstring. ``capture``: the store the site reads."""

    takes_runs = True  # R.RedisExchanges records are welcome

    def __init__(self, capture: Capture | None = None, max_value: int = 200, reactor=None):
        self.capture = capture if capture is not None else Capture()
        self.max_value = max_value
        self.reactor = reactor

    # -- records -----------------------------------------------------------------------------
    def _redis(self, pair, ts, command, reply, latency):
        limit = self.max_value
        self.capture.exchange(
            pair, ts, "redis", format_args(command, limit),
            command_summary(command, reply, limit) or format_value(reply, limit), latency,
            command_size(command), reply_size(reply), type(reply) is _ERROR)

    def emit(self, r) -> None:
        kind = type(r)
        if kind is _RUN:
            redis = self._redis
            pair, ts = r.pair, r.ts
            for command, reply, latency in zip(r.commands, r.replies, r.latencies, strict=True):
                redis(pair, ts, command, reply, latency)
        elif kind is _EXCHANGE:
            self._redis(r.pair, r.ts, r.command, r.reply, r.latency)
        elif kind is _HTTP:
            self._http(r)
        elif kind is _PUSH:
            self.capture.exchange(r.pair, r.ts, "push", "(push)",
                                  format_value(r.value, self.max_value))
        elif kind is _UNANSWERED:
            self.capture.exchange(r.pair, r.ts, "unanswered",
                                  format_args(r.command, self.max_value), "(no reply)",
                                  request_size=command_size(r.command))
        elif kind is _DETECTED:
            self.capture.detected(r.pair, r.protocol)
        elif kind is _UNDECODABLE:
            self.capture.exchange(r.pair, r.ts, "error",
                                  f"undecodable {r.direction} ({r.protocol})", r.reason,
                                  error=True)
        elif kind is _NOTICE:
            self.capture.exchange(r.pair, r.ts, "notice", r.message)

    def emit_many(self, records) -> None:
        emit = self.emit
        for r in records:
            emit(r)

    def _http(self, r) -> None:
        limit = self.max_value
        method = (r.method or b"?").decode("latin-1")
        target = format_args([r.target or b""], limit) if r.target is not None else ""
        request = f"{method} {target}".strip()
        if r.status is None:
            reply, error = "(no response)", False
        else:
            reply = f"{r.status} {r.reason.decode('latin-1', 'replace')}".strip()
            if not r.complete:
                reply += " (incomplete)"
            error = r.status >= 400
        self.capture.exchange(r.pair, r.ts, "http", request, reply, r.latency,
                              r.request_body_size, r.response_body_size, error)

    # -- the byte path (the pcap sink's contract) ---------------------------------------------
    def pair_opened(self, pair, now: float) -> None:
        self.capture.opened(pair.id, now, str(pair.client), str(pair.listen), pair.target,
                            str(pair.server) if pair.server is not None else "")

    def data(self, pair_id: int, direction: str, data: bytes, now: float) -> None:
        self.capture.data(pair_id, direction, data, now)

    def half_closed(self, pair_id: int, direction: str, now: float) -> None:
        self.capture.half_closed(pair_id, direction, now)

    def pair_closed(self, pair_id: int, summary: dict, now: float) -> None:
        self.capture.closed(pair_id, now, str(summary.get("closed_by", "")),
                            str(summary.get("how", "")), summary.get("bytes_c2s"),
                            summary.get("bytes_s2c"))

    def mask(self, pair_id: int, direction: str, start: int, end: int) -> int:
        return self.capture.mask(pair_id, direction, start, end)

    def decoded(self, pair_id: int, protocol: str) -> None:
        self.capture.detected(pair_id, protocol)
