"""What the console and JSON sinks share: records queued on the proxy's hot path, formatted and
written in batches on a later reactor turn (``BufferedSink``).

The hot path only appends. A batch is written ``FLUSH_DELAY`` seconds after its first record (a
reactor turn holds too few records when pipelining is light: a write per exchange would cost more
than decoding it), or at once when ``MAX_BACKLOG`` records are queued, so the backlog stays
bounded. Each batch goes out in a single ``write()`` of whole lines, so a reader or a log
rotation never sees half a record at a flush point. A pipelined run (``RedisExchanges``) counts
as its exchanges, and a flush formats at most ``MAX_BACKLOG`` of them per ``format_batch`` call
(one ``write()`` each): an ``emit_many`` of 50,000 records is formatted in slices, never in one
call (how many records a reactor turn hands over is bounded upstream, by the proxy and the
chain).
"""

from __future__ import annotations

from twisted.application import service
from twisted.logger import Logger

from playground.common.defaultreactor import default_reactor
from playground.decode import records as R

MAX_BACKLOG = 512  # records queued before a synchronous flush (a batch: cache-warm)
FLUSH_DELAY = 0.05  # seconds a record may wait in the queue

_RUN = R.RedisExchanges


class BufferedSink(service.Service):
    """Queues records; ``FLUSH_DELAY`` after the first (or at ``MAX_BACKLOG``), ``format_batch``
    turns them into bytes for one ``write()``. Subclasses implement ``open_output``/``format_batch``.
    """

    log = Logger()
    label = "sink"
    flush_delay = FLUSH_DELAY

    def __init__(self, reactor=None):
        self.reactor = reactor
        self.out = None
        self.failed = False
        self._queue: list = []
        self._extra = 0  # exchanges in the queued R.RedisExchanges beyond one per record
        self._call = None
        self.written = 0
        self._dropper = None  # a dropwriter.DropWriter (--slow-sink drop), or None
        self.shared = None  # the sharedbatch.SharedBatch that queues for this sink, or None

    def open_output(self):
        raise NotImplementedError

    def close_output(self):
        pass

    def format_batch(self, batch: list, look: tuple | None = None) -> bytes:
        """``look``: ``plain.plain_batch(batch, self.max_value)`` when a caller has it."""
        raise NotImplementedError

    def startService(self):
        self.reactor = default_reactor(self.reactor)
        self.out = self.open_output()
        super().startService()
        if self.shared is not None:
            self.shared.member_started(self)

    def stopService(self):
        if self.shared is not None:
            self.shared.member_stopped(self)  # what it queued for this sink is written first
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.flush()
        result = None
        if self.out is not None:
            try:
                result = self.close_output()
            except OSError as e:
                self._fail(e)
            self.out = None
        return result

    def emit(self, record) -> None:
        if self.out is None or self.failed:
            return
        q = self._queue
        q.append(record)
        if type(record) is _RUN:  # counts as its exchanges: batches stay cache-sized
            self._extra += len(record.commands) - 1
        if self._call is None:
            self._call = self.reactor.callLater(self.flush_delay, self._turn)
        elif len(q) + self._extra >= MAX_BACKLOG:
            self.flush()

    def emit_many(self, records: list) -> None:
        if self.out is None or self.failed:
            return
        q = self._queue
        q.extend(records)
        for r in records:
            if type(r) is _RUN:
                self._extra += len(r.commands) - 1
        if self._call is None:
            self._call = self.reactor.callLater(self.flush_delay, self._turn)
        elif len(q) + self._extra >= MAX_BACKLOG:
            self.flush()

    def _turn(self):
        self._call = None
        self.flush()

    def flush(self) -> None:
        queue, self._queue = self._queue, []
        extra, self._extra = self._extra, 0
        if not queue or self.out is None or self.failed:
            return
        if len(queue) + extra <= MAX_BACKLOG:
            self._write_batch(queue, len(queue) + extra)
            return
        start = 0  # slices of at most MAX_BACKLOG exchanges (a bigger run: on its own)
        while start < len(queue) and not self.failed:
            end = start
            n = 0
            while end < len(queue) and n < MAX_BACKLOG:
                r = queue[end]
                n += len(r.commands) if type(r) is _RUN else 1
                end += 1
            self._write_batch(queue[start:end], n)
            start = end

    def _write_batch(self, batch: list, n: int, look: tuple | None = None) -> None:
        """Format ``batch`` (``n`` exchanges) and write it in one ``write()``; ``look``: see
        ``format_batch``."""
        dropper = self._dropper
        if dropper is not None and dropper.full():
            dropper.drop(n)  # the reader is behind: not even formatted
            return
        try:
            data = self.format_batch(batch) if look is None else self.format_batch(batch, look)
        except Exception:
            self.log.failure("{label}: cannot format {n} record(s); dropped",
                             label=self.label, n=len(batch))
            return
        if not data:
            return
        try:
            self.out.write(data)
            self.out.flush()
            self.written += n  # exchanges of a run each count
        except (OSError, ValueError) as e:
            self._fail(e)

    def _fail(self, e) -> None:
        if not self.failed:
            self.failed = True
            self.log.error("{label}: write failed, no more output: {error}",
                           label=self.label, error=e)
