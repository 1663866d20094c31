"""The proxy's decoder chain: detect -> decode -> pair -> redact -> filter -> sinks.

``Chain`` is the ``PairObserver`` the proxy calls (see ``playground.proxy.observer``). Per pair
it keeps a ``PairState``, detects the protocol from the first bytes (``playground.decode.detect``)
or uses the forced one, and feeds the decoder for it: ``respdecoder.RespStream``,
``httpdecoder.HttpStream``, ``plainviews.TextStream`` or ``plainviews.HexStream``. Each turns its
decoder's events into records (``playground.decode.records``), redacted and filtered
(``--only``/``--skip``, ``HttpFilter`` for ``--http-filter``), and hands them to the sinks
(console, JSON lines) through the chain. The pcap sink gets every byte; when redaction is on, the
chain holds back the bytes a decoder has not settled yet (an incomplete HTTP head or RESP command
may still turn out to carry a password) and registers the secrets' stream ranges with the sink
first, so the file has same-length filler exactly where the secrets were. What is held is
bounded: ``MAX_HELD`` a direction and ``MAX_HELD_ALL`` over all pairs (past either, a
direction's unsettled bytes go out masked, as a secret would; past the second, the directions
holding the most go first, so one client's flood of unfinished AUTHs does not blank another's
few held bytes). A byte consumer that
holds back itself (``settles_later``: the web view when no pcap sink is on) gets every read at
once and asks ``unsettled`` once per pair when it stores a batch; at a direction's end the chain
hands it the line scanner for what was never settled (``credential_from``).

Bytes a fault injected or held back come through ``faulted`` (see ``playground.proxy.observer``):
the exchanges they complete carry the fault's name (``records.FaultedRedisExchange``,
``HttpExchange.fault``), so every sink marks them.

Decoder failures are caught in one place (``Chain.guarded``, inlined on the hot path of
``data``; both hand over to ``Chain._failed``): a decoder that fails on a direction turns into
an ``undecodable`` record and that direction falls back to the hex view; the observer itself
never raises to the proxy. Per-pair state is dropped at ``pair_closed``.

Work per call is bounded: a decoder result bigger than ``Chain.SLICE`` records (tens of thousands
of commands unanswered at close, a huge list of records) is not handed on at once. The first slice
goes to the sinks, the rest is *held* (``Chain.held``, in order; while anything is held, every
later record queues behind it) and handed on one slice per ``Chain.work()`` call, which the proxy
makes once per reactor turn before it feeds more bytes.

The proxy's decoding options and the building of the chain and its sinks are
``playground.proxy.decoding``'s.
"""

from __future__ import annotations

import fnmatch
import re
from collections import deque
from operator import itemgetter

from twisted.logger import Logger

from playground.decode import records as R
from playground.decode.detect import HEX, HTTP, PROTOCOLS, RESP, TEXT, Detector
from playground.decode.httpdecoder import HttpStream
from playground.decode.linesecrets import StreamMask
from playground.decode.plainviews import HexStream, TextStream
from playground.decode.respdecoder import RespStream
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT

MIB = 1024 * 1024
MAX_HELD = 1 * MIB  # bytes held back from the pcap sink per direction, at most
MAX_HELD_ALL = 32 * MIB  # ... and over all pairs: past it, the largest holders' bytes go out
# masked (Chain._shed), then, if it is still the largest, the reader's
_SIZE = itemgetter(0)


class HttpFilter:
    """``[METHOD[,METHOD...]] [PATH-GLOB]``: which HTTP exchanges the sinks get."""

    def __init__(self, spec: str):
        self.spec = spec
        parts = spec.split()
        self.methods: frozenset | None = None
        self.glob: re.Pattern | None = None
        if parts and not parts[0].startswith("/") and not parts[0].startswith("*") and (
            "://" not in parts[0]
        ):
            self.methods = frozenset(m.strip().upper().encode()
                                     for m in parts.pop(0).split(",") if m.strip())
        if len(parts) > 1:
            raise ValueError(f"expected '[METHOD[,METHOD]] [PATH-GLOB]', got {spec!r}")
        if parts:
            self.glob = re.compile(fnmatch.translate(parts[0]).encode("utf-8"), re.S)

    def __call__(self, method: bytes | None, target: bytes | None) -> bool:
        if self.methods is not None and (method or b"").upper() not in self.methods:
            return False
        return self.glob is None or bool(self.glob.match(target or b""))


_PUSH_NAMES = frozenset({b"PUSH", b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE", b"MONITOR",
                         b"CLIENT"})
# the decoder for each protocol: made with the pair's state, ``feed(direction, data, now,
# offset)``, ``eof(direction, now)``, ``close(now)``, ``settled(direction)``
_DECODERS = {HEX: HexStream, TEXT: TextStream, HTTP: HttpStream, RESP: RespStream}


class PairState:
    """What the chain keeps per pair, and what its decoders reach it through: ``chain`` (its
    ``emit``/``emit_many``, options, ``hold`` and ``guarded``), ``id`` and ``client``,
    ``secret`` (a secret's stream range, for the pcap), ``fall_back`` (a direction goes to the
    hex view), ``hex_view()``/``hexview`` and ``early`` (what the pcap hold-back still has)."""

    __slots__ = ("chain", "id", "client", "detector", "decoder", "offsets", "hex", "hexview",
                 "held", "pcap_off", "broken", "forced")

    def __init__(self, chain, pair):
        self.chain = chain
        self.id = pair.id
        self.client = str(pair.client)
        self.detector = None
        self.decoder = None
        self.offsets = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
        self.hex = None  # directions that fell back to the hex view
        self.hexview = None  # the hex view they (and raw bytes after an HTTP switch) go to
        self.held = None  # pcap hold-back: direction -> bytearray
        self.pcap_off = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
        self.broken = False
        self.forced = None  # direction -> (start, end): unsettled bytes the bound sent masked

    def fall_back(self, direction):
        if self.hex is None:
            self.hex = set()
        self.hex.add(direction)
        self.hex_view()

    def early(self, direction):
        """``(offset, bytes)`` the byte consumer has not had yet of ``direction`` (before the
        chunk being decoded): what the pcap hold-back still has, or what a ``settles_later``
        consumer has not stored (its ``unstored``); or None."""
        if self.held is None:
            chain = self.chain
            return chain.pcap.unstored(self.id, direction) if chain._later else None
        return self.pcap_off[direction], bytes(self.held[direction])

    def rescan(self, direction, data, now, offset, at, resync=False):
        """After ``direction``'s decoder stopped at stream offset ``at`` (given up on a frame, or
        raised) in ``data`` (which starts at ``offset``): its bytes from ``at`` on go to the hex
        view, shown; the bytes the byte consumer has not had yet (``early``: an unfinished
        frame's start, an AUTH's name and the start of its password) are searched for secrets
        with them, not shown. ``resync``: ``at`` may be inside a line (no ``early`` bytes say
        where the frame began)."""
        early = self.early(direction)
        if early is not None and early[0] <= at:
            self.hexview.feed(direction, early[1] + data, now, early[0], False, at)
        elif at >= offset:
            self.hexview.feed(direction, data[at - offset:], now, at, resync)
        else:  # it stopped in an earlier chunk, whose bytes are gone
            self.hexview.feed(direction, data, now, offset, True)

    def hex_view(self):
        if self.hexview is None:
            decoder = self.decoder
            self.hexview = decoder if type(decoder) is HexStream else HexStream(self)
        return self.hexview

    def secret(self, direction, start, end):
        pcap = self.chain.pcap
        if pcap is not None and self.chain.redact:
            leaked = pcap.mask(self.id, direction, start, end)
            forced = self.forced and self.forced.get(direction)
            if leaked and forced:  # bytes the hold-back bound already sent masked
                leaked -= max(0, min(end, forced[1]) - max(start, forced[0]))
            if leaked > 0:
                self.chain.leaked += leaked

    def mask_unsettled(self, direction, start, end):
        """The hold-back bound sends bytes ``[start, end)`` that may still prove to hold a
        secret (a password longer than MAX_HELD): masked, as the secret would be."""
        leaked = self.chain.pcap.mask(self.id, direction, start, end)
        if leaked:
            self.chain.leaked += leaked
        if self.forced is None:
            self.forced = {}
        was = self.forced.get(direction)
        self.forced[direction] = (was[0] if was and was[1] == start else start, end)


class Chain:
    """The observer: see the module docstring. ``sinks`` have ``emit(record)``."""

    log = Logger()

    def __init__(self, sinks, pcap=None, decode: str = "auto", redact: bool = True,
                 only=None, skip=None, http_filter=None, max_value: int = 200,
                 max_frame: int = 512 * MIB):
        self.sinks = list(sinks)
        self.pcap = pcap
        self.decode = decode
        self.redact = redact
        self.only = only
        self.skip = skip
        self.http_filter = http_filter
        self.max_value = max_value
        self.max_frame = max_frame
        self.pairs: dict[int, PairState] = {}
        self.leaked = 0  # secret bytes the pcap already had in clear (could not be masked)
        self.held_bytes = 0  # bytes held back from the pcap sink, all pairs (MAX_HELD_ALL)
        self.failures = 0
        self._hold = pcap is not None and redact
        # a byte consumer that settles reads per batch itself (``settles_later``: the web
        # view alone) gets every read at once and asks ``unsettled`` per pair and batch, not
        # the decoder per read; the end of a direction is scanned as ``_unsettled_end`` does
        self._later = self._hold and getattr(pcap, "settles_later", False)
        if self._later:
            self._hold = False
            pcap.settle_with(self.unsettled, MAX_HELD, MAX_HELD_ALL)
        self._pcap_decoded = getattr(pcap, "decoded", None)  # the pcap sink's tshark hint
        # --only/--skip and the pushes: does a server push (pub/sub, MONITOR) reach the sinks?
        self.shows_pushes = not ((only is not None and not (only & _PUSH_NAMES)) or (
            skip is not None and b"PUSH" in skip))
        # sinks that all take R.RedisExchanges get one per pipelined read
        self.runs = bool(self.sinks) and all(getattr(s, "takes_runs", False) for s in self.sinks)
        n = len(self.sinks)
        if n == 0:
            self.emit = _drop
        elif n == 1:
            self.emit = self.sinks[0].emit
        elif n == 2:  # the console's batch and the web view: no loop per record
            self.emit = _both(self.sinks[0].emit, self.sinks[1].emit)
        else:
            self.emit = self._emit_all
        # emit_many(records): one call per decoded chunk (a sink may take a list at once)
        self._many = [getattr(s, "emit_many", None) or _one_by_one(s.emit) for s in self.sinks]
        self._emit_one = self.emit
        self._emit_list = self._many[0] if n == 1 else self._emit_many_all
        self.emit_many = self._emit_bounded
        # held work, in order: lists of records, and steps (callables: True = call again)
        self.held: deque = deque()
        self._stepping = False

    def hides(self, name: bytes) -> bool:
        """Does --only/--skip keep the Redis command ``name`` (upper case) from the sinks?"""
        return (self.only is not None and name not in self.only) or (
            self.skip is not None and name in self.skip)

    def _emit_all(self, record):
        for s in self.sinks:
            s.emit(record)

    def _emit_many_all(self, records):
        for emit_many in self._many:
            emit_many(records)

    # -- bounded slices ----------------------------------------------------------------------
    SLICE = 256  # records handed to the sinks at once; the rest waits for work()

    def _emit_bounded(self, records):
        if len(records) <= self.SLICE:
            self._emit_list(records)
        else:
            self._emit_list(records[:self.SLICE])
            self.hold(records[self.SLICE:])

    def _emit_held(self, record):
        self.held.append([record])

    def _emit_many_held(self, records):
        if records:
            self.held.append(records)

    def hold(self, work):
        """Queue ``work`` (a list of records, or a step: a callable doing a bounded piece and
        returning True while it has more) behind what is held; records emitted from now on
        queue behind it until ``work()`` has handed everything on."""
        self.held.append(work)
        if not self._stepping:
            self.emit, self.emit_many = self._emit_held, self._emit_many_held

    def work(self) -> bool:
        """Hand on one slice of the held work (about ``SLICE`` records, or one step); True
        while more is held. The proxy calls it once per reactor turn while ``held``."""
        held = self.held
        emit_list = self._emit_list
        budget = self.SLICE
        self._stepping = True
        self.emit, self.emit_many = self._emit_one, emit_list  # at the head: straight on
        try:
            while held and budget > 0:
                w = held[0]
                if type(w) is list:
                    if len(w) > budget:
                        held[0] = w[budget:]
                        w = w[:budget]
                    else:
                        held.popleft()
                    budget -= len(w)
                    emit_list(w)
                else:
                    if not w():
                        held.popleft()
                    budget = 0  # a step is a slice
        finally:
            self._stepping = False
            if held:
                self.emit, self.emit_many = self._emit_held, self._emit_many_held
            else:
                self.emit, self.emit_many = self._emit_one, self._emit_bounded
        return bool(held)

    # -- PairObserver ----------------------------------------------------------------------
    def pair_opened(self, pair, now):
        st = PairState(self, pair)
        self.pairs[pair.id] = st
        if self.pcap is not None:
            self.pcap.pair_opened(pair, now)
        if self._hold:
            st.held = {CLIENT_TO_SERVER: bytearray(), SERVER_TO_CLIENT: bytearray()}
        self.emit(R.Open(pair.id, now, st.client, str(pair.listen),
                         str(pair.server) if pair.server is not None else pair.target,
                         pair.target))
        if self.decode == "auto":
            st.detector = Detector(CLIENT_TO_SERVER)
        else:
            self.guarded(st, None, now, self._start, st, self.decode, now, True)

    def data(self, pair_id, direction, data, now):
        st = self.pairs.get(pair_id)
        if st is None:
            return
        offset = st.offsets[direction]
        st.offsets[direction] = offset + len(data)
        if st.hex is not None and direction in st.hex:
            self.guarded(st, direction, now, st.hexview.feed, direction, data, now, offset)
        elif st.decoder is not None:
            try:  # guarded, inline: this is the hot path
                st.decoder.feed(direction, data, now, offset)
            except Exception:
                self._failed(st, direction, now)  # this chunk shown as hex, as after an
                self.guarded(st, direction, now, st.rescan, direction, data, now, offset, offset,
                             offset > 0)  # Undecodable: what it may cut searched for secrets
        elif st.detector is not None:
            self.guarded(st, direction, now, self._detect, st, direction, data, now)
        pcap = self.pcap
        if pcap is not None:
            held = st.held
            if held is None:
                pcap.data(pair_id, direction, data, now)
            elif held[direction] or st.hex is not None or st.decoder is None or not data:
                self._release(st, direction, data, now)
            else:  # _release's common case, inline: nothing held, the decoder settled it all
                end = st.pcap_off[direction] + len(data)
                settled = st.decoder.settled(direction)
                if settled is None or settled >= end:
                    st.pcap_off[direction] = end
                    pcap.data(pair_id, direction, data, now)
                else:
                    self._release(st, direction, data, now)

    def faulted(self, pair_id, direction, data, now, fault, injected=True):
        """``data`` (what the client received) is a reply a fault named ``fault`` injected
        (``injected``) or held back: as ``data``, and the exchanges it completes carry the
        fault's name."""
        emit, emit_many = self.emit, self.emit_many

        def marked(record):
            kind = type(record)
            if kind is R.RedisExchange:
                record = R.FaultedRedisExchange(record.pair, record.ts, record.client,
                                                 record.command, record.reply, record.latency,
                                                 record.redacted, fault, injected)
            elif kind is R.RedisExchanges:
                return [marked(r) for r in record.exchanges()]
            elif kind is R.HttpExchange and record.status is not None:
                record.fault = fault
                record.injected = injected
            return [record]

        def emit_marked(record):
            for r in marked(record):
                emit(r)

        def emit_many_marked(records):
            emit_many([m for r in records for m in marked(r)])

        self.emit, self.emit_many = emit_marked, emit_many_marked
        try:
            self.data(pair_id, direction, data, now)
        finally:  # unless the records were held meanwhile (hold() set its own)
            if self.emit is emit_marked:
                self.emit = emit
            if self.emit_many is emit_many_marked:
                self.emit_many = emit_many

    def half_closed(self, pair_id, direction, now):
        st = self.pairs.get(pair_id)
        if st is None:
            return
        # the decoder's end may forget what it waited on (a CONFIG GET's answer): what it had
        # not settled before is scanned too
        before = self._unsettled(st, direction) if self.pcap is not None else None
        if st.decoder is None and st.detector is not None:
            self.guarded(st, direction, now, self._decide, st, st.detector.finish(), now)
        if st.decoder is not None:
            self.guarded(st, direction, now, st.decoder.eof, direction, now)
        if st.hexview is not None and st.hexview is not st.decoder:
            self.guarded(st, direction, now, st.hexview.eof, direction, now)
        self.emit(R.HalfClose(pair_id, now, direction))
        if self.pcap is not None:
            if st.held is not None:
                self._release(st, direction, b"", now, everything=True, before=before)
            elif self._later:
                self._end_later(st, direction, before)
            self.pcap.half_closed(pair_id, direction, now)

    def pair_closed(self, pair_id, summary, now):
        st = self.pairs.get(pair_id)
        if st is None:
            return
        if not self._later:
            del self.pairs[pair_id]
        before = {d: self._unsettled(st, d) for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT)} if (
            self.pcap is not None) else None  # as in half_closed
        if st.decoder is None and st.detector is not None and st.detector.pending:
            self.guarded(st, None, now, self._decide, st, st.detector.finish(), now)
        if st.decoder is not None:
            if summary.get("closed_by") == "server" and summary.get("how") == "fin":
                # the server ended the pair cleanly (FIN, TLS close_notify), maybe with no
                # half-close reported: its end, as ``half_closed`` says it (a close-delimited
                # HTTP response completes there; a reset or the proxy's force-close cuts it)
                self.guarded(st, SERVER_TO_CLIENT, now, st.decoder.eof, SERVER_TO_CLIENT, now)
            self.guarded(st, None, now, st.decoder.close, now)
        if st.hexview is not None and st.hexview is not st.decoder:
            self.guarded(st, None, now, st.hexview.close, now)
        self.emit(R.Close(pair_id, now, st.client, summary.get("bytes_c2s", 0),
                          summary.get("bytes_s2c", 0), summary.get("duration", 0.0),
                          str(summary.get("closed_by", "")), str(summary.get("how", "")),
                          str(summary.get("reason", ""))))
        if self.pcap is not None:
            if st.held is not None:
                for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
                    self._release(st, d, b"", now, everything=True, before=before[d])
            elif self._later:
                for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
                    self._end_later(st, d, before[d])
                # asked about (``unsettled``) until here: storing one direction's end must
                # not take the other's kept-back bytes for settled
                del self.pairs[pair_id]
            self.pcap.pair_closed(pair_id, summary, now)
        # The decoders point back at st: break the cycle, so their buffers go now, not when
        # the cyclic GC runs.
        st.decoder = st.detector = st.held = None

    # -- the one except ----------------------------------------------------------------------
    def guarded(self, st, direction, now, fn, *args) -> bool:
        """Call a decoder step; on any failure, fall back to hex. False when it failed."""
        try:
            fn(*args)
            return True
        except Exception:
            self._failed(st, direction, now)
            return False

    def _failed(self, st, direction, now):
        """A decoder step raised (called inside the ``except``): log once, fall back to hex."""
        self.failures += 1
        if not st.broken:
            st.broken = True
            self.log.failure("decoder failed on pair #{pair}; showing hex instead", pair=st.id)
        proto = st.decoder.protocol if st.decoder is not None else "detect"
        for d in (direction,) if direction else (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            st.fall_back(d)
            try:
                self.emit(R.Undecodable(st.id, now, d, proto, "decoder error", None))
            except Exception:
                pass
        if st.decoder is None:
            st.decoder = st.hex_view()
            st.detector = None

    # -- detection ---------------------------------------------------------------------------
    def _detect(self, st, direction, data, now):
        proto = st.detector.feed(direction, data, now)
        if proto is not None:
            self._decide(st, proto, now)

    def _decide(self, st, proto, now):
        pending = st.detector.pending
        st.detector = None
        self._start(st, proto, now, False)
        offsets = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
        for d, chunk, t in pending:
            st.decoder.feed(d, chunk, t, offsets[d])
            offsets[d] += len(chunk)

    def _start(self, st, proto, now, forced):
        if proto not in PROTOCOLS:
            proto = HEX
        st.decoder = _DECODERS[proto](st)
        if self._pcap_decoded is not None:
            self._pcap_decoded(st.id, proto)
        self.emit(R.Detected(st.id, now, proto, forced))

    # -- pcap hold-back --------------------------------------------------------------------
    def _release(self, st, direction, data, now, everything=False, before=None):
        """Pass to the pcap sink what the decoder has settled; hold the rest (bounded).
        ``everything``: the direction ends; ``before``: what was unsettled before the
        decoder's end (``_unsettled``)."""
        held = st.held[direction]
        settled = None
        if everything and not (held and self.redact):
            pass
        elif st.hex is not None and direction in st.hex:
            settled = st.hexview.settled(direction)
        elif st.decoder is not None:
            settled = st.decoder.settled(direction)
        elif st.detector is not None:
            settled = st.pcap_off[direction]  # undecided: hold (bounded by the detector)
        start = st.pcap_off[direction]
        if everything:
            if before is not None and held and self.redact:
                settled = before if settled is None else min(settled, before)
            if settled is not None and settled < start + len(held):
                self._unsettled_end(st, direction, max(settled, start), held, start)
            settled = None
        if not held:
            if not data:
                return
            if settled is None or settled >= start + len(data):
                st.pcap_off[direction] = start + len(data)
                self.pcap.data(st.id, direction, data, now)
                return
        had = len(held)
        held += data
        total = len(held)
        upto = total if settled is None else max(0, min(settled - start, total))
        if upto < total:
            over_all = self.held_bytes - had + total - MAX_HELD_ALL  # past all pairs' bound
            if over_all > 0 and total <= MAX_HELD:
                # the directions holding more than this one give way first
                over_all = self._shed(over_all, total, held, now)
            if total > MAX_HELD or over_all > 0:
                # the bounds (a direction's, all pairs'): stop holding; what is not settled
                # yet goes out masked
                st.mask_unsettled(direction, start + upto, start + total)
                upto = total
        if upto:
            chunk = bytes(held[:upto])
            del held[:upto]
            st.pcap_off[direction] = start + upto
            self.pcap.data(st.id, direction, chunk, now)
        self.held_bytes += len(held) - had

    def _shed(self, excess, mine, keep, now) -> int:
        """Past all pairs' bound (MAX_HELD_ALL) by ``excess`` bytes: the directions holding
        more than ``mine`` bytes (the reader's, whose hold-back is ``keep``), the largest
        first, stop holding until ``excess`` is freed: what they hold goes out masked, as it
        would at their own bound. A connection that holds the most gives way, not one that
        holds a few bytes of an unfinished AUTH. A scan of the pairs, only past the bound.
        The excess left (0 or less: within the bound)."""
        holders = sorted(
            ((len(held), st, direction) for st in self.pairs.values() if st.held is not None
             for direction, held in st.held.items() if len(held) > mine and held is not keep),
            key=_SIZE, reverse=True)
        pcap = self.pcap
        for size, st, direction in holders:
            if excess <= 0:
                break
            held = st.held[direction]
            start = st.pcap_off[direction]
            st.mask_unsettled(direction, start, start + size)  # all of it was unsettled
            chunk = bytes(held)
            del held[:]
            st.pcap_off[direction] = start + size
            self.held_bytes -= size
            excess -= size
            pcap.data(st.id, direction, chunk, now)
        return excess

    @staticmethod
    def _unsettled_end(st, direction, at, held, start):
        """The direction ends (FIN, close) with bytes from ``at`` the decoder never settled
        (an unfinished command or head, requests after an unanswered Upgrade): if the line
        scanner finds a credential in them, they go out masked from its first byte on."""
        first = credential_from(at, bytes(held[at - start:]))
        if first is not None:
            st.mask_unsettled(direction, first, start + len(held))

    # -- settled per batch (``settles_later``) ------------------------------------------------
    def unsettled(self, pair_id, direction) -> int | None:
        """The stream offset from which the bytes of ``direction`` fed so far may still prove
        to hold a secret, or None when they are all settled (or the pair is gone): what the
        hold-back asks per read, asked by a ``settles_later`` consumer per batch."""
        st = self.pairs.get(pair_id)
        return None if st is None else self._unsettled(st, direction)

    @staticmethod
    def _unsettled(st, direction):
        if st.hex is not None and direction in st.hex:
            settled = st.hexview.settled(direction)
        elif st.decoder is not None:
            settled = st.decoder.settled(direction)
        elif st.detector is not None:
            return 0  # undecided: nothing is settled (bounded by the detector)
        else:
            return None
        return settled if settled is not None and settled < st.offsets[direction] else None

    def _end_later(self, st, direction, before=None):
        """``direction`` ends (FIN, close): bytes the decoder never settled (``before``: what
        was unsettled before its end) go to the consumer's ``unsettled_end`` with the line
        scanner (as ``_unsettled_end``)."""
        at = self._unsettled(st, direction)
        if before is not None:
            at = before if at is None else min(at, before)
        if at is not None:
            self.pcap.unsettled_end(st.id, direction, at, credential_from)


def credential_from(at: int, data: bytes) -> int | None:
    """The stream offset of the first credential the line scanner finds in ``data`` (bytes
    from stream offset ``at`` that the decoder never settled), or None."""
    m = StreamMask(at)
    found = m.feed(data)[2] + m.flush()[2]
    return min(s for s, _ in found) if found else None


def _drop(record):
    pass


def _both(first, second):
    def emit(record):
        first(record)
        second(record)

    return emit


def _one_by_one(emit):
    def emit_many(records):
        for r in records:
            emit(r)

    return emit_many
