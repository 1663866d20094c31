"""The stats sink: counts the decoder chain's exchange records into ``stats.CommandStats``.

It takes the records the console and JSON sinks get (``playground.decode.records``): a Redis exchange
gives its command name, whether the reply is an error (and its code) and its latency; an HTTP
exchange its method, status (>= 400 counts as an error) and latency; unanswered requests are
counted apart. Other records are ignored at the cost of one type check. Being a chain sink, it
sees what ``--only``/``--skip``/``--http-filter`` let through.

Cheap on purpose (the decoding proxy's throughput is benchmarked): a command's raw name maps to
its counters through a small bounded cache, so an exchange costs a dict lookup, two additions
and one histogram update.
"""

from __future__ import annotations

from playground.codec import values as resp
from playground.daemon.stats import CommandStats, command_name, error_code
from playground.decode import records as R

_EXCHANGE = R.RedisExchange
_RUN = R.RedisExchanges
_HTTP = R.HttpExchange
_UNANSWERED = R.RedisUnanswered
_ERROR = resp.Error
MAX_CACHED = 1024  # raw spellings remembered (set, SET, Set ... map to one entry)
MAX_NAME = 32  # the longest command name stats.command_name makes a label of


class StatsSink:
    """``emit(record)``, as the chain's sinks have; ``stats`` holds the counts."""

    def __init__(self, stats: CommandStats | None = None):
        self.stats = stats if stats is not None else CommandStats()
        self._resp: dict = {}  # raw command name -> stats.Command

    def _resp_entry(self, raw):
        entry = self.stats.entry("resp", command_name(raw))
        # only names that can be labels: a long one (UNKNOWN) would hold its bytes for good
        if len(self._resp) < MAX_CACHED and isinstance(raw, bytes) and len(raw) <= MAX_NAME:
            self._resp[raw] = entry
        return entry

    takes_runs = True  # R.RedisExchanges records are welcome

    def _exchange(self, command, reply, latency) -> None:
        raw = command[0] if command else b""
        entry = self._resp.get(raw) if type(raw) is bytes else None
        if entry is None:
            entry = self._resp_entry(raw)
        entry.count += 1
        if type(reply) is _ERROR:
            entry.errors += 1
            self.stats.error("resp", error_code(reply.value))
        if latency is not None:
            entry.latency.observe(latency)

    def emit(self, r) -> None:
        kind = type(r)
        if kind is _EXCHANGE:
            self._exchange(r.command, r.reply, r.latency)
        elif kind is _RUN:
            for command, reply, latency in zip(r.commands, r.replies, r.latencies,
                                               strict=True):
                self._exchange(command, reply, latency)
        elif kind is _HTTP:
            method = command_name(r.method)
            status = r.status
            if status is None:
                self.stats.unanswered += 1
                return
            self.stats.record("http", method, status >= 400, r.latency)
            self.stats.http_status(method, status)
        elif kind is _UNANSWERED:
            self.stats.unanswered += 1

    def emit_many(self, records) -> None:
        emit = self.emit
        for r in records:
            emit(r)
