"""``--pcap FILE``: a proxy observer that writes every pair as a TCP conversation in a pcap file.

The framing is made by the pure ``playground.pcap.PcapWriter``; this module owns the file.
``PcapSink`` is an ``IService`` and a ``PairObserver``:

* ``startService`` opens (truncates) the file and writes the global header, so even a run that
  sees no traffic leaves a file ``tshark -r`` accepts; ``stopService`` writes what is queued,
  flushes and closes. Pairs still open at stop are left as they are (no FIN is invented).
* Observer calls are queued and turned into records once per reactor turn (``callLater(0)``), or
  at once when the queued payload exceeds ``flush_threshold`` bytes. Each record goes to the file
  in one ``write()`` of whole records and the file is flushed after each batch, so a reader never
  sees a partial record at a flush point, and never at stop.
* Because records are made at the end of the turn, a mask registered with ``mask()`` during the
  same turn as the data it covers still applies, whatever order the observers were called in.
  ``mask(pair_id, direction, start, end)`` takes stream offsets (0 = first payload byte of that
  direction) and returns how many bytes of the range were already written in clear (0 = fully
  masked); ranges may also be registered ahead of the bytes.
* A write error (disk full ...) is logged once; the sink then stops writing and the proxy carries
  on. Calls made while the service is not running are ignored.

Standalone use: ``PcapSink(path, reactor=None)``; ``writer_options`` go to ``PcapWriter``
(``server_port=``, ``mask_byte=``, ...).
"""

from __future__ import annotations

from twisted.application import service
from twisted.logger import Logger

from playground.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT, PairInfo
from playground.pcap import MAX_MASK_RANGES, PcapWriter

DEFAULT_FLUSH_THRESHOLD = 1 << 20

_OPEN, _DATA, _HALF, _CLOSE = range(4)


class PcapSink(service.Service):
    log = Logger()

    def __init__(
        self,
        path: str,
        reactor=None,
        flush_threshold: int = DEFAULT_FLUSH_THRESHOLD,
        **writer_options,
    ):
        self.path = path
        self.name = f"pcap@{path}"
        self.reactor = reactor
        self.flush_threshold = flush_threshold
        self.writer = PcapWriter(**writer_options)
        self.bytes_written = 0
        self.failed = False
        self._file = None
        self._queue: list[tuple] = []
        self._queued_bytes = 0
        self._call = None
        # masks for pairs whose open is still queued: (pair_id, direction) -> [(start, end)]
        self._early_masks: dict[tuple[int, str], list[tuple[int, int]]] = {}
        self._queued_opens: set[int] = set()

    def _reactor(self):
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        return self.reactor

    # -- IService ----------------------------------------------------------------------------

    def startService(self):
        self._file = open(self.path, "wb")  # owned until stopService
        self.failed = False
        service.Service.startService(self)
        self._write(self.writer.header())
        self._flush_file()
        self.log.info("pcap writing to {path}", path=self.path)

    def stopService(self):
        service.Service.stopService(self)
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._drain()
        if self._file is not None:
            try:
                self._file.close()
            except OSError as e:
                self._fail(e)
            self._file = None
        self.log.info(
            "pcap closed {path}: {records} records, {size} bytes",
            path=self.path, records=self.writer.records, size=self.bytes_written,
        )

    # -- PairObserver ------------------------------------------------------------------------

    def pair_opened(self, pair: PairInfo, now: float) -> None:
        if self._accepting():
            self._queued_opens.add(pair.id)
            self._enqueue((_OPEN, pair, now), 0)

    def data(self, pair_id: int, direction: str, data: bytes, now: float) -> None:
        if data:
            self._enqueue((_DATA, pair_id, direction, bytes(data), now), len(data))

    def half_closed(self, pair_id: int, direction: str, now: float) -> None:
        self._enqueue((_HALF, pair_id, direction, now), 0)

    def pair_closed(self, pair_id: int, summary: dict, now: float) -> None:
        self._enqueue((_CLOSE, pair_id, summary, now), 0)

    # -- masking -----------------------------------------------------------------------------

    def mask(self, pair_id: int, direction: str, start: int, end: int) -> int:
        """Mask stream bytes [start, end) of ``direction``; returns bytes already out in clear."""
        if direction not in (CLIENT_TO_SERVER, SERVER_TO_CLIENT) or end <= start:
            return 0
        if pair_id not in self._queued_opens:
            return self.writer.mask(pair_id, direction, start, end)
        # The pair's open is still queued: nothing of it is written yet.
        ranges = self._early_masks.setdefault((pair_id, direction), [])
        if len(ranges) >= MAX_MASK_RANGES:
            return end - start
        ranges.append((start, end))
        return 0

    # -- internals ---------------------------------------------------------------------------

    def _accepting(self) -> bool:
        return self.running and self._file is not None and not self.failed

    def _enqueue(self, item: tuple, size: int) -> bool:
        if not self._accepting():
            return False
        self._queue.append(item)
        self._queued_bytes += size
        if self._queued_bytes >= self.flush_threshold:
            self._drain()
        elif self._call is None:
            self._call = self._reactor().callLater(0, self._turn)
        return True

    def _turn(self) -> None:
        self._call = None
        self._drain()

    def _drain(self) -> None:
        queue, self._queue = self._queue, []
        self._queued_bytes = 0
        w = self.writer
        chunks = []
        for item in queue:
            kind = item[0]
            if kind == _DATA:
                chunks.append(w.data(*item[1:]))
            elif kind == _OPEN:
                chunks.append(w.pair_opened(item[1], item[2]))
                for direction in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
                    for start, end in self._early_masks.pop((item[1].id, direction), ()):
                        w.mask(item[1].id, direction, start, end)
            elif kind == _HALF:
                chunks.append(w.half_closed(*item[1:]))
            else:
                chunks.append(w.pair_closed(*item[1:]))
        self._early_masks.clear()
        self._queued_opens.clear()
        if chunks:
            self._write(b"".join(chunks))
            self._flush_file()

    def _write(self, records: bytes) -> None:
        if not records or self._file is None or self.failed:
            return
        try:
            self._file.write(records)
            self.bytes_written += len(records)
        except OSError as e:
            self._fail(e)

    def _flush_file(self) -> None:
        if self._file is None or self.failed:
            return
        try:
            self._file.flush()
        except OSError as e:
            self._fail(e)

    def _fail(self, error: OSError) -> None:
        if not self.failed:
            self.failed = True
            self.log.error("pcap {path}: write failed, no more records: {error}",
                           path=self.path, error=error)
