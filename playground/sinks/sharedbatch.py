"""The console and JSON sinks on one queue (``SharedBatch``): the default decoding view, console
and ``--json`` together, must not cost twice one sink.

The chain hands each record once to a ``SharedBatch`` instead of to each sink. It queues them
as a ``batching.BufferedSink`` does (one timer, one backlog bound, the same slices); a batch is
looked at once (``plain.plain_batch``: are its arguments and bulk replies short printable
ASCII?) and each member formats it with that look and writes it to its own output in one
``write()``, exactly the bytes it would write alone. Each member stays its own ``IService``
(opens and closes its file, its ``--slow-sink`` policy, its write errors): when one stops, what
is queued is written to every member first.
"""

from __future__ import annotations

from playground.sinks.batching import BufferedSink
from playground.sinks.plain import plain_batch


class SharedBatch(BufferedSink):
    """Queues records for ``members`` (``BufferedSink``s) and writes each batch to each of
    them. Started and stopped through its members, not as a service of its own."""

    label = "sinks"
    takes_runs = True  # R.RedisExchanges: every member takes them

    def __init__(self, members: list):
        super().__init__()
        self.members = list(members)
        self.live: list = []  # the members started and not stopped
        limits = {m.max_value for m in self.members}
        # the look depends on --max-value: shared only when every member shows as much
        self.max_value = limits.pop() if len(limits) == 1 else None
        for m in self.members:
            m.shared = self
            if m.out is not None:  # started already
                self.member_started(m)

    def member_started(self, member) -> None:
        self.reactor = member.reactor
        self.live.append(member)
        self.out = self.live  # records are queued while a member writes

    def member_stopped(self, member) -> None:
        self.flush()
        if member in self.live:
            self.live.remove(member)
        if not self.live:
            if self._call is not None and self._call.active():
                self._call.cancel()
            self._call = None
            self.out = None

    def _write_batch(self, batch: list, n: int, look: tuple | None = None) -> None:
        lim = self.max_value
        if lim is not None:
            look = plain_batch(batch, lim)
        for member in self.live:
            if member.out is not None and not member.failed:
                member._write_batch(batch, n, look)


def shared(sinks: list) -> list:
    """``sinks`` as the chain gets them: two or more ``BufferedSink``s (console, JSON) replaced,
    where the first of them was, by one ``SharedBatch``; the others as they are."""
    buffered = [s for s in sinks if isinstance(s, BufferedSink)]
    if len(buffered) < 2:
        return list(sinks)
    batch = SharedBatch(buffered)
    out = []
    for s in sinks:
        if s is buffered[0]:
            out.append(batch)
        elif s not in buffered:
            out.append(s)
    return out
