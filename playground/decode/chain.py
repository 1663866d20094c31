"""The proxy's decoder chain: detect -> decode -> pair -> redact -> filter -> sinks.

``Chain`` is the ``PairObserver`` the proxy calls (see ``playground.proxy.observer``). Per pair it
detects the protocol from the first bytes (``playground.decode.detect``) or uses the forced one, feeds a
decoder (RESP via ``playground.decode.respdecoder``, HTTP via ``playground.decode.httpdecoder``, a line view,
a hex view), turns decoder events into records (``playground.decode.records``), redacts credentials,
applies the ``--only``/``--skip``/``--http-filter`` filters and hands records to the sinks
(console, JSON lines). The pcap sink gets every byte; when redaction is on, the chain holds back
the bytes a decoder has not settled yet (an incomplete HTTP head or RESP command may still turn
out to carry a password) and registers the secrets' stream ranges with the sink first, so the
file has same-length filler exactly where the secrets were.

Decoder failures are caught in one place (``Chain._guarded``, inlined on the hot path of ``data``;
both hand over to ``Chain._failed``): a decoder that fails on a direction turns into an
``undecodable`` record and that direction falls back to the hex view; the observer itself never
raises to the proxy. Per-pair state is dropped at ``pair_closed``.

Work per call is bounded: a decoder result bigger than ``Chain.SLICE`` records (tens of thousands
of commands unanswered at close, a huge list of records) is not handed on at once. The first slice
goes to the sinks, the rest is *held* (``Chain.held``, in order; while anything is held, every
later record queues behind it) and handed on one slice per ``Chain.work()`` call, which the proxy
makes once per reactor turn before it feeds more bytes.

The proxy subcommand takes its decoding options from here: ``OPT_PARAMETERS``, ``OPT_FLAGS``,
``opt_verbose`` (the counted ``-v``), ``check_options(opts)`` and
``build(opts, reactor) -> (services, observer)``.
"""

from __future__ import annotations

import fnmatch
import re
from collections import deque
from operator import itemgetter
from operator import sub as _sub

from twisted.logger import Logger

from playground.decode import records as R
from playground.decode.detect import HEX, HTTP, PROTOCOLS, RESP, TEXT, Detector
from playground.decode.redaction import REDACTED, SECRET_COMMANDS
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT

MIB = 1024 * 1024
MAX_HELD = 1 * MIB  # bytes held back from the pcap sink per direction, at most














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














# -- redaction --------------------------------------------------------------------------------

def _redact_headers(headers) -> tuple:
    from playground.decode.httpdecoder import SECRET_HEADERS

    out = []
    changed = False
    for k, v in headers:
        if v and k.lower() in SECRET_HEADERS:
            out.append((k, REDACTED))
            changed = True
        else:
            out.append((k, v))
    return tuple(out) if changed else headers


def _secret_values(*header_lists) -> list[bytes]:
    """The secret header values (and the credential after an ``Authorization`` scheme), so a
    body that echoes them (httpbin's ``/headers``, ``/get``) can be masked in previews too."""
    from playground.decode.httpdecoder import SECRET_HEADERS

    found = []
    for headers in header_lists:
        for k, v in headers:
            if v and k.lower() in SECRET_HEADERS:
                found.append(v)
                scheme, _, credential = v.partition(b" ")
                if len(credential) >= 4:
                    found.append(credential.strip())
    return sorted(set(found), key=len, reverse=True)  # longest first: mask whole values first


def _mask_preview(preview: bytes, secrets: list[bytes], size: int = 0) -> bytes:
    """``preview`` with each secret replaced by ``(redacted)``; when the preview is the cut
    start of a ``size``-byte body, a secret it ends inside is masked from its first byte."""
    for secret in secrets:
        if secret in preview:
            preview = preview.replace(secret, REDACTED)
    if len(preview) < size:
        for secret in secrets:
            cut = _cut_secret(preview, secret)
            if cut < len(preview):
                preview = preview[:cut] + REDACTED
    return preview


def _cut_secret(preview: bytes, secret: bytes) -> int:
    """Where the longest tail of ``preview`` that is the start of ``secret`` begins
    (``len(preview)`` if none)."""
    n = len(preview)
    i = max(0, n - len(secret) + 1)
    first = secret[:1]
    while True:
        i = preview.find(first, i)
        if i < 0:
            return n
        if secret.startswith(preview[i:]):
            return i
        i += 1


# -- decoders as the chain sees them ---------------------------------------------------------


class _Hex:
    """Fallback and ``--decode hex``: every chunk as a hexdump record.

    With redaction, the credentials of the lines it carries (``playground.decode.linesecrets``) are
    overwritten with ``*`` and masked in the pcap, and an incomplete line that may still turn
    out to hold one is held back until its line ends."""

    protocol = HEX

    def __init__(self, st):
        self.st = st
        self.masks = {} if st.chain.redact else None  # direction -> linesecrets.StreamMask
        self.hidden = {}  # direction -> stream offset before which nothing is shown

    def feed(self, direction, data, now, offset, resync=False, show_from=0):
        """``resync``: ``offset`` may be inside a line (the bytes before it were not seen);
        ``show_from``: bytes before this stream offset are only searched for secrets (for the
        pcap), not shown."""
        st = self.st
        if self.masks is None:
            st.chain.emit(R.HexChunk(st.id, now, direction, data, offset))
            return
        m = self.masks.get(direction)
        if m is None or m.next != offset:
            if m is not None:
                self._show(direction, m.flush(), now)
            from playground.decode.linesecrets import StreamMask

            m = self.masks[direction] = StreamMask(offset, resync=resync or m is not None)
        if show_from > offset:
            self.hidden[direction] = show_from
        self._show(direction, m.feed(data), now)

    def _show(self, direction, out, now):
        shown, at, secrets = out
        st = self.st
        for start, end in secrets:
            st.secret(direction, start, end)
        hidden = self.hidden.get(direction, 0)
        if at < hidden:
            shown = shown[hidden - at:]
            at = hidden
        if shown:
            st.chain.emit(R.HexChunk(st.id, now, direction, shown, at))

    def eof(self, direction, now):
        m = self.masks.get(direction) if self.masks else None
        if m is not None:
            self._show(direction, m.flush(), now)

    def close(self, now):
        for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            self.eof(d, now)

    def settled(self, direction):
        m = self.masks.get(direction) if self.masks else None
        return None if m is None else m.held  # None: everything


class _Text:
    """Text lines; with redaction, the credentials they carry (``playground.decode.linesecrets``)
    are shown as ``(redacted)`` and masked in the pcap."""

    protocol = TEXT

    def __init__(self, st):
        from playground.decode.views import LineView

        self.st = st
        self.views = {CLIENT_TO_SERVER: LineView(), SERVER_TO_CLIENT: LineView()}
        self.secrets = None
        if st.chain.redact:
            from playground.decode.linesecrets import LineSecrets, redact, starts_secret_line

            self.secrets = {CLIENT_TO_SERVER: LineSecrets(), SERVER_TO_CLIENT: LineSecrets()}
            self._redact = redact
            self._starts = starts_secret_line

    def feed(self, direction, data, now, offset):
        view = self.views[direction]
        if self.secrets is not None:
            secrets = self.secrets[direction]
            tail = view.tail[1]
            if secrets.idle and not self._starts(tail + data if tail else data,
                                                 not secrets.cut):
                # the common case: no line of this read can be a secret's
                lines = view.feed(data)
                if lines:
                    secrets.skip(lines[-1].partial)
                self._lines(direction, lines, now, False)
                return
        self._lines(direction, view.feed(data), now)

    def _lines(self, direction, lines, now, look=True):
        st = self.st
        emit = st.chain.emit
        pid = st.id
        if self.secrets is None or not look:
            for line in lines:
                emit(R.TextLine(pid, now, direction, line.data, line.offset, line.partial))
            return
        redact = self._redact
        secrets = self.secrets[direction]
        for line in lines:
            data = line.data
            ranges = secrets.line(data, line.partial)
            if ranges:
                at = line.offset
                for start, end in ranges:
                    st.secret(direction, at + start, at + end)
                data = redact(data, ranges)
            emit(R.TextLine(pid, now, direction, data, line.offset, line.partial))

    def eof(self, direction, now):
        self._lines(direction, self.views[direction].flush(), now)

    def close(self, now):
        for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            self.eof(d, now)

    def settled(self, direction):
        if self.secrets is None:
            return None
        at, tail = self.views[direction].tail
        return at if self.secrets[direction].pending(tail) else None


class _Http:
    protocol = HTTP

    def __init__(self, st):
        from playground.codec.parser import STREAM_MIN
        from playground.decode import httpdecoder

        self.hd = httpdecoder
        self.st = st
        chain = st.chain
        # --max-value 0: bodies shown up to 64 KiB, as the sinks show values
        self.conv = httpdecoder.HttpConversation(
            max_head=min(chain.max_frame, MIB), preview=max(chain.max_value or STREAM_MIN, 64))

    def feed(self, direction, data, now, offset):
        self._events(self.conv.feed(direction, data, now), now)

    def eof(self, direction, now):
        self._events(self.conv.eof(direction, now), now)

    def close(self, now):
        self._events(self.conv.close(now), now)

    def settled(self, direction):
        settled = self.conv.settled(direction)
        held = self.st.hexview.settled(direction) if self.st.hexview is not None else None
        return settled if held is None else min(settled, held)

    def _events(self, events, now):
        hd = self.hd
        st = self.st
        chain = st.chain
        for e in events:
            kind = type(e)
            if kind is hd.HttpExchange:
                req = e.request
                if req is not None:
                    method, target, version, headers = (req.method, req.target, req.version,
                                                        req.headers)
                else:
                    method = target = version = None
                    headers = ()
                if chain.http_filter is not None and not chain.http_filter(method, target):
                    continue
                resp_headers = e.response_headers
                request_preview, response_preview = e.request_preview, e.response_preview
                if chain.redact:
                    secrets = _secret_values(headers, resp_headers)
                    if secrets:
                        headers = _redact_headers(headers)
                        resp_headers = _redact_headers(resp_headers)
                        request_preview = _mask_preview(request_preview, secrets,
                                                        e.request_body_size)
                        response_preview = _mask_preview(response_preview, secrets,
                                                         e.response_body_size)
                chain.emit(R.HttpExchange(
                    st.id, now, st.client, method, target, version, e.status, e.reason,
                    e.latency, headers, resp_headers, e.request_body_size,
                    e.response_body_size, e.content_type, request_preview,
                    response_preview, e.interim, e.complete))
            elif kind is hd.HttpRaw:
                st.hex_view().feed(e.direction, e.data, now, e.offset)
            elif kind is hd.HttpSecret:
                st.secret(e.direction, e.start, e.end)
            elif kind is hd.HttpUnanswered:
                req = e.request
                if chain.http_filter is not None and not chain.http_filter(req.method,
                                                                           req.target):
                    continue
                headers, preview = req.headers, e.preview
                if chain.redact:
                    secrets = _secret_values(headers)
                    if secrets:
                        headers = _redact_headers(headers)
                        preview = _mask_preview(preview, secrets, e.body_size)
                chain.emit(R.HttpExchange(
                    st.id, now, st.client, req.method, req.target, req.version, None, b"",
                    None, headers, (), e.body_size, 0, None, preview, b"", (), False))
            elif kind is hd.HttpUndecodable:
                chain.emit(R.Undecodable(st.id, now, e.direction, HTTP, e.reason, e.offset))
            elif kind is hd.HttpSwitched:
                what = e.protocol.decode("latin-1") or e.how
                chain.emit(R.Notice(st.id, now, f"switched to {what} ({e.status}): "
                                                "the rest is shown raw"))


class _Resp:
    """Wraps ``playground.decode.respdecoder.RespConversation``."""

    protocol = RESP

    def __init__(self, st):
        from playground.decode import respdecoder

        self.rd = respdecoder
        self.st = st
        # long strings are streamed: the decoder keeps what the view shows (resp.Truncated)
        conv = self.conv = respdecoder.RespConversation(max_bulk=st.chain.max_frame,
                                                        max_value=st.chain.max_value)
        # the cheap interface: answered commands come as ``Answer``s or plain tuples
        self._feed = conv.feed_answers
        self._eof = conv.eof_answers
        self._close = conv.close_answers
        chain = st.chain
        self._unfiltered = chain.only is None and chain.skip is None
        self._runs = chain.runs
        self._chain = chain  # chain.emit changes while records are held: look it up per call
        self._pid, self._client = st.id, st.client

    def feed(self, direction, data, now, offset):
        events = self._feed(direction, data, now)
        if events:
            e = events[0]
            if type(e) is tuple and len(events) == 1 and self._unfiltered:
                # request/response traffic: one ordinary command answered by this read
                self._chain.emit(R.RedisExchange(self._pid, now, self._client, e[0], e[2],
                                                 e[4] - e[3], False))
                return
            self._events(events, now, direction, data, offset)

    def eof(self, direction, now):
        self._in_steps(lambda limit: self._eof(direction, now, limit), now)

    def close(self, now):
        self._in_steps(lambda limit: self._close(now, limit), now)

    def _in_steps(self, answers, now):
        """``answers(limit)``: the conversation's eof/close events, at most ``limit`` a call. A
        few unanswered commands are handed on now; tens of thousands one slice per step of
        held work (``Chain.work``), the records after them (the pair's close) queued behind."""
        chain = self._chain
        limit = chain.SLICE
        events = answers(limit)
        self._events(events, now)
        if len(events) < limit or not self.conv.pending:
            return
        st = self.st

        def step() -> bool:
            got = []

            def one():
                got.extend(answers(limit))
                self._events(got, now)

            return chain._guarded(st, None, now, one) and len(got) >= limit and (
                self.conv.pending > 0)

        chain.hold(step)

    def settled(self, direction):
        return self.conv.settled(direction)

    def _command(self, args):
        """(args for display, redacted?)"""
        chain = self.st.chain
        if not chain.redact or not args:
            return args, False
        first = args[0]
        if not isinstance(first, bytes) or first.upper() not in SECRET_COMMANDS:
            return args, False
        out = self.rd.redact_command(args)
        return out, out != tuple(args)

    def _events(self, events, now, fed=None, data=b"", offset=0):
        st = self.st
        chain = st.chain
        rd = self.rd
        hides = None if self._unfiltered else chain.hides
        pid, client = st.id, st.client
        exchange = R.RedisExchange
        if self._runs and hides is None and len(events) > 1 and (
                set(map(type, events)) == _TUPLES_ONLY):
            # pipelined ordinary commands answered by one read: one record for them all
            chain.emit(R.RedisExchanges(pid, now, client, list(map(_ARGS, events)),
                                        list(map(_REPLY, events)),
                                        list(map(_sub, map(_REPLIED_AT, events),
                                                 map(_SENT_AT, events)))))
            return
        records = []  # handed over at once, in order
        emit = records.append
        for e in events:
            t = type(e)
            if t is tuple:  # the hot path: an ordinary command answered (see respdecoder)
                if hides is None or not hides(e[1]):
                    emit(exchange(pid, now, client, e[0], e[2], e[4] - e[3], False))
            elif t is rd.Answer:
                name = e.name
                if hides is not None and hides(name):
                    continue
                if chain.redact and name in SECRET_COMMANDS:
                    shown, redacted = self._command(e.args)
                    emit(exchange(pid, now, client, shown, rd.redact_reply(e.args, e.reply),
                                  e.latency, redacted))
                elif chain.redact and name == b"EXEC" and getattr(e, "queued", ()):
                    emit(exchange(pid, now, client, e.args, rd.redact_exec(e.queued, e.reply),
                                  e.latency, False))
                else:
                    emit(exchange(pid, now, client, e.args, e.reply, e.latency, False))
            elif t is rd.ServerPush:
                if chain.shows_pushes:
                    emit(R.RedisPush(pid, now, e.value))
            elif t is rd.Unanswered:
                args = e.command
                first = args[0] if args else b""
                if hides is None or not hides(first.upper() if type(first) is bytes else b""):
                    shown, redacted = self._command(args)
                    emit(R.RedisUnanswered(pid, now, client, shown, redacted))
            elif t is rd.Undecodable:
                direction, at = e.direction, e.offset
                emit(R.Undecodable(pid, now, direction, RESP, e.reason, at))
                st.fall_back(direction)
                if direction == fed and at is not None and at < offset + len(data):
                    # the rest of this chunk, from where decoding stopped, as hex
                    chain.emit_many(records)
                    records = []
                    emit = records.append
                    early = st.early(direction)
                    if early is not None and early[0] <= at:
                        # the pcap has not had the bytes from the failed frame's start (for
                        # commands) yet: all are searched for secrets, those from ``at`` on
                        # are shown
                        st.hexview.feed(direction, early[1] + data, now, early[0], False, at)
                    elif at >= offset:
                        st.hexview.feed(direction, data[at - offset:], now, at)
                    else:  # it stopped in an earlier chunk, whose bytes are gone
                        st.hexview.feed(direction, data, now, offset, True)
            elif t is rd.SecretRange:
                st.secret(e.direction, e.start, e.end)
        if records:
            chain.emit_many(records)


# the items of an answered plain tuple (see playground.decode.respdecoder)
_ARGS, _REPLY, _SENT_AT, _REPLIED_AT = itemgetter(0), itemgetter(2), itemgetter(3), itemgetter(4)
_TUPLES_ONLY = {tuple}

_PUSH_NAMES = frozenset({b"PUSH", b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE", b"MONITOR",
                         b"CLIENT"})


_DECODERS = {HEX: _Hex, TEXT: _Text, HTTP: _Http, RESP: _Resp}


class _PairState:
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
        """``(offset, bytes)`` the pcap hold-back still has of ``direction`` (before the chunk
        being decoded), or None."""
        if self.held is None:
            return None
        return self.pcap_off[direction], bytes(self.held[direction])

    def hex_view(self):
        if self.hexview is None:
            decoder = self.decoder
            self.hexview = decoder if type(decoder) is _Hex else _Hex(self)
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
        self.pairs: dict[int, _PairState] = {}
        self.leaked = 0  # secret bytes the pcap already had in clear (could not be masked)
        self.failures = 0
        self._hold = pcap is not None and redact
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
        st = _PairState(self, pair)
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
            self._guarded(st, None, now, self._start, st, self.decode, now, True)

    def data(self, pair_id, direction, data, now):
        st = self.pairs.get(pair_id)
        if st is None:
            return
        offset = st.offsets[direction]
        st.offsets[direction] = offset + len(data)
        if st.hex is not None and direction in st.hex:
            self._guarded(st, direction, now, st.hexview.feed, direction, data, now, offset)
        elif st.decoder is not None:
            try:  # _guarded, inline: this is the hot path
                st.decoder.feed(direction, data, now, offset)
            except Exception:
                self._failed(st, direction, now)
                self._guarded(st, direction, now, st.hexview.feed, direction, data, now, offset,
                              offset > 0)
        elif st.detector is not None:
            self._guarded(st, direction, now, self._detect, st, direction, data, now)
        if self.pcap is not None:
            if st.held is None:
                self.pcap.data(pair_id, direction, data, now)
            else:
                self._release(st, direction, data, now)

    def half_closed(self, pair_id, direction, now):
        st = self.pairs.get(pair_id)
        if st is None:
            return
        if st.decoder is None and st.detector is not None:
            self._guarded(st, direction, now, self._decide, st, st.detector.finish(), now)
        if st.decoder is not None:
            self._guarded(st, direction, now, st.decoder.eof, direction, now)
        if st.hexview is not None and st.hexview is not st.decoder:
            self._guarded(st, direction, now, st.hexview.eof, direction, now)
        self.emit(R.HalfClose(pair_id, now, direction))
        if self.pcap is not None:
            if st.held is not None:
                self._release(st, direction, b"", now, everything=True)
            self.pcap.half_closed(pair_id, direction, now)

    def pair_closed(self, pair_id, summary, now):
        st = self.pairs.pop(pair_id, None)
        if st is None:
            return
        if st.decoder is None and st.detector is not None and st.detector.pending:
            self._guarded(st, None, now, self._decide, st, st.detector.finish(), now)
        if st.decoder is not None:
            self._guarded(st, None, now, st.decoder.close, now)
        if st.hexview is not None and st.hexview is not st.decoder:
            self._guarded(st, None, now, st.hexview.close, now)
        self.emit(R.Close(pair_id, now, st.client, summary.get("bytes_c2s", 0),
                          summary.get("bytes_s2c", 0), summary.get("duration", 0.0),
                          str(summary.get("closed_by", "")), str(summary.get("how", ""))))
        if self.pcap is not None:
            if st.held is not None:
                for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
                    self._release(st, d, b"", now, everything=True)
            self.pcap.pair_closed(pair_id, summary, now)
        # The decoders point back at st: break the cycle, so their buffers go now, not when
        # the cyclic GC runs.
        st.decoder = st.detector = st.held = None

    # -- the one except ----------------------------------------------------------------------
    def _guarded(self, st, direction, now, fn, *args) -> bool:
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
    def _release(self, st, direction, data, now, everything=False):
        """Pass to the pcap sink what the decoder has settled; hold the rest (bounded)."""
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
        held += data
        total = len(held)
        upto = total if settled is None else max(0, min(settled - start, total))
        if upto < total and total > MAX_HELD:
            # the bound: stop holding; what is not settled yet goes out masked
            st.mask_unsettled(direction, start + upto, start + total)
            upto = total
        if upto:
            chunk = bytes(held[:upto])
            del held[:upto]
            st.pcap_off[direction] = start + upto
            self.pcap.data(st.id, direction, chunk, now)


    @staticmethod
    def _unsettled_end(st, direction, at, held, start):
        """The direction ends (FIN, close) with bytes from ``at`` the decoder never settled
        (an unfinished command or head, requests after an unanswered Upgrade): if the line
        scanner finds a credential in them, they go out masked from its first byte on."""
        from playground.decode.linesecrets import StreamMask

        m = StreamMask(at)
        found = m.feed(bytes(held[at - start:]))[2] + m.flush()[2]
        if found:
            st.mask_unsettled(direction, min(s for s, _ in found), start + len(held))


def _drop(record):
    pass


def _one_by_one(emit):
    def emit_many(records):
        for r in records:
            emit(r)

    return emit_many
