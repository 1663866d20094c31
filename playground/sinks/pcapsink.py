"""``--pcap FILE``: a proxy observer that writes every pair as a TCP conversation in a pcap file.

The framing is made by the pure ``playground.sinks.pcapwriter.PcapWriter``; this module owns the file.
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
* The file keeps the target's real port, so tshark needs to be told which dissector a port that
  is not the protocol's usual one has. The start-up and close log lines give the exact command
  (``tshark -r FILE -d tcp.port==PORT,resp``): at start-up from ``target`` and ``decode`` (the
  proxy's options), at close from the ports written and the protocols the decoder chain
  reported with ``decoded(pair_id, protocol)``.

Standalone use: ``PcapSink(path, reactor=None)``; ``writer_options`` go to ``PcapWriter``
(``server_port=``, ``mask_byte=``, ...).
"""

from __future__ import annotations

import shlex

from twisted.application import service
from twisted.logger import Logger

from playground.common.defaultreactor import default_reactor
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT, PairInfo
from playground.sinks.pcapwriter import MAX_MASK_RANGES, PcapWriter, target_port

DISSECTORS = ("resp", "http")  # decoded protocols tshark has a dissector for (same names)

DEFAULT_FLUSH_THRESHOLD = 1 << 20

_OPEN, _DATA, _HALF, _CLOSE = range(4)


class PcapSink(service.Service):
    log = Logger()

    def __init__(
        self,
        path: str,
        reactor=None,
        flush_threshold: int = DEFAULT_FLUSH_THRESHOLD,
        target: str | None = None,
        listen: str | None = None,
        decode: str | None = None,
        **writer_options,
    ):
        self.path = path
        self.target = target  # the proxy's --target, --listen and --decode, for the tshark hint
        self.listen = listen
        self.decode = decode
        self.ports: dict[int, set] = {}  # server port in the file -> protocols decoded there
        self._pair_ports: dict[int, int] = {}  # open pair -> its server port
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
        self.reactor = default_reactor(self.reactor)
        return self.reactor

    # -- IService ----------------------------------------------------------------------------

    def startService(self):
        self._file = open(self.path, "wb")  # owned until stopService
        self.failed = False
        service.Service.startService(self)
        self._write(self.writer.header())
        self._flush_file()
        self.log.info("pcap writing to {path}; {hint}", path=self.path, hint=self.start_hint())

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
            "pcap closed {path}: {records} records, {size} bytes; {hint}",
            path=self.path, records=self.writer.records, size=self.bytes_written,
            hint=self.close_hint(),
        )

    # -- how to read the file ----------------------------------------------------------------

    def tshark_command(self, decode_as) -> str:
        """``tshark -r FILE`` with a ``-d tcp.port==PORT,PROTOCOL`` per ``(port, protocol)``."""
        words = ["tshark", "-r", shlex.quote(self.path)]
        for port, protocol in decode_as:
            words += ["-d", f"tcp.port=={port},{protocol}"]
        return " ".join(words)

    def start_hint(self) -> str:
        """What to run to read the file, from the options (the protocol may not be known yet)."""
        w = self.writer
        port = w.server_port or target_port(self.target or "")
        where = ""
        if port is None:
            port = target_port(self.listen or "")
            if port is None:
                return ("the target is not TCP: in the file its side has the listening port "
                        f"(or {w.fallback_port}); read it with "
                        f"{self.tshark_command([('PORT', 'resp')])} (the close line names PORT)")
            where = f"the target is not TCP: in the file its side has port {port}; "
        if self.decode in DISSECTORS:
            return f"{where}read it with: {self.tshark_command([(port, self.decode)])}"
        return (f"{where}read it with: {self.tshark_command([(port, 'resp')])} "
                f"(HTTP traffic: -d tcp.port=={port},http)")

    def close_hint(self) -> str:
        """What to run to read the file, from the ports written and the protocols decoded."""
        decode_as, others = [], []
        for port, protocols in sorted(self.ports.items()):
            found = [(port, protocol) for protocol in DISSECTORS if protocol in protocols]
            decode_as += found[:1]
            others += found[1:]  # a port that carried both: one -d per port
        if not decode_as:
            return self.start_hint()
        hint = f"read it with: {self.tshark_command(decode_as)}"
        if others:
            hint += " (other pairs: " + ", ".join(
                f"-d tcp.port=={port},{protocol}" for port, protocol in others) + ")"
        return hint

    def decoded(self, pair_id: int, protocol: str) -> None:
        """The decoder chain decided ``protocol`` for ``pair_id`` (for the close hint)."""
        port = self._pair_ports.get(pair_id)
        if port is not None:
            self.ports[port].add(protocol)

    # -- PairObserver ------------------------------------------------------------------------

    def pair_opened(self, pair: PairInfo, now: float) -> None:
        if pair.server is None:  # never reached its target (a failed connect): no conversation
            return  # to draw; its close goes to a pair the writer does not know
        if self._accepting():
            port = self.writer.server_port_of(pair)
            self._pair_ports[pair.id] = port
            self.ports.setdefault(port, set())
            self._queued_opens.add(pair.id)
            self._enqueue((_OPEN, pair, now), 0)

    def data(self, pair_id: int, direction: str, data: bytes, now: float) -> None:
        if data:
            self._enqueue((_DATA, pair_id, direction, bytes(data), now), len(data))

    def half_closed(self, pair_id: int, direction: str, now: float) -> None:
        self._enqueue((_HALF, pair_id, direction, now), 0)

    def pair_closed(self, pair_id: int, summary: dict, now: float) -> None:
        self._pair_ports.pop(pair_id, None)
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
