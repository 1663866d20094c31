"""The web view's sink: the decoder chain's records and its byte path into a ``capture.Capture``.

``WebSink`` is two things to the chain (``playground.decode.chain.Chain``):

* a record sink (``emit``, ``emit_many``, ``takes_runs``, like ``playground.sinks.statssink``):
  exchanges are kept as the decoder made them, in forms the cyclic GC leaves alone (a simple
  string or an error as a tagged tuple): a connection's unpipelined exchanges as a ``marshal``led
  segment of rows of its growing entry (``Capture.add_rows``), a pipelined run as one entry of
  plain tuples, and become rows of text when read (``rows``), made with the console's
  formatting (``set foo "bar"`` -> ``+OK``, bounded at ``max_value`` bytes a value); the
  detected protocol is noted; other records are ignored; each exchange is counted in
  ``latency`` (``playground.web.latency``: the pictures);
* a byte consumer, the pcap sink's contract (``pair_opened``, ``data``, ``half_closed``,
  ``pair_closed``, ``mask``, ``decoded``): the chain hands it the same bytes it hands the pcap
  sink, with the same hold-back and the same masks (``playground.decode.bytetee.ByteTee`` when
  both are on), so the follow-stream view is redacted exactly as the pcap is. Alone on that
  path (no pcap sink), it takes the hold-back over (``settles_later``): the chain hands it every
  read and the view asks the chain once per connection, when it stores a batch, how far the
  decoder has settled them, keeping the rest back (``settle_with``, ``unsettled_end``). Without
  decoding (``--decode none --no-redact``) it is the proxy's observer itself.

Batches: on the proxy's hot path a record or a read is only queued (an append and a count);
``flush`` stores the queue at once: a connection's unpipelined exchanges of the batch become one
segment (one ``marshal``), their latencies are counted together (``Latency.ones``), the reads go
in per connection (``Capture.add_reads``). It runs when the queue holds ``QUEUE_LIMIT`` (what a
record and a read hold, counted: bounded memory, bounded work per call; when a record fills it,
the records alone: the chain is decoding a read then, see ``_flush_records``), and before anything
reads the capture or the pictures or changes what must come after the queued (a mask, a FIN, a
close: ``Capture.before_read``, ``Latency.before_read``), so every answer is as live as before
and a mask reaches every byte before it can be served.
"""

from __future__ import annotations

import re
from itertools import chain, groupby, repeat
from marshal import dumps, loads
from operator import attrgetter, itemgetter

from twisted.logger import Logger

from playground.codec import values as resp
from playground.codec.parser import STREAM_MIN
from playground.decode import records as R
from playground.decode.views import escape
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from playground.sinks.console import command_summary, fault_mark, format_args, format_value
from playground.web.capture import Capture, encoded_rows, is_encoded
from playground.web.latency import Latency

_EXCHANGE = R.RedisExchange
_RUN = R.RedisExchanges
_HTTP = R.HttpExchange
_PUSH = R.RedisPush
_UNANSWERED = R.RedisUnanswered
_DETECTED = R.Detected
# records the view keeps nothing of: the byte path tells it of opens, closes, half-closes and
# the detected protocol (``pair_opened``, ``pair_closed``, ``half_closed``, ``decoded``)
_UNSTORED = frozenset({R.Open, R.Close, R.HalfClose, R.Detected})
_UNDECODABLE = R.Undecodable
_NOTICE = R.Notice
_ERROR = resp.Error
_SIMPLE = resp.Simple
_TRUNCATED = resp.Truncated
_SCALARS = frozenset({bytes, _TRUNCATED, int, type(None), float, bool})
_KEPT = STREAM_MIN  # the most the RESP decoder keeps of a long string
_BULKS = frozenset({bytes})
_SIMPLES = frozenset({resp.Simple})
_LINES = frozenset({resp.Simple, resp.Error})
_VALUE = attrgetter("value")
# Python's own bytes beside the values', counted in an entry's cost (tracemalloc, CPython 3.11):
_PER_COMMAND = 120  # its tuple, its latency, its reply's object header, its slots in a run
_PER_ARG = 41  # an argument's bytes object header and its slot in the command's tuple
_PER_ROW = 200  # an HTTP, push, notice... row: its tuple and its strings' headers
_PER_BLOB = 48  # a marshalled run's bytes object header
_flat = chain.from_iterable
_ROW_LIMIT = 4096  # an exchange with more bytes in its command or its reply is kept as a tuple
_AS_IS = frozenset({bytes, int, type(None), float, bool})  # replies an encoded row keeps as they are
_MARSHAL = 2  # marshal's format for a row: floats in binary, no references (the fastest)
_PLAIN = _AS_IS | {_SIMPLE, _ERROR}  # replies a batch keeps without formatting
_TS, _COMMAND, _REPLY, _LATENCY = map(attrgetter, ("ts", "command", "reply", "latency"))
_PAIR = itemgetter(0)  # of a queued read
_PAIR_OF = attrgetter("pair")  # of a record
_EXCHANGES = {_EXCHANGE}
_DIRECTIONS = (CLIENT_TO_SERVER, SERVER_TO_CLIENT)
# The queue (records and reads waiting for the flush) holds at most QUEUE_LIMIT of what it
# counts (tracemalloc, CPython 3.11): RECORD_COST per exchange (a record, or each of a run's,
# with its command's tuple, its arguments' and its reply's headers, its times and its slot),
# and per read READ_COST (its tuple, its time, its bytes' header, its slot) and its bytes twice
# (theirs, and the copies the records decoded from them hold).
QUEUE_LIMIT = 1 << 20
_FEW = 4  # a connection's unpipelined exchanges in a batch worth a segment of their own
RECORD_COST = 384
READ_COST = 160


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


def _stored(reply):
    """A reply as the sink keeps it: a simple string or an error as a tuple (``(b"+", value)``,
    ``(b"-", value)``, ``(b"!", value)`` for a RESP3 bulk error), a scalar as it is; tuples of
    bytes are left alone by the cyclic GC, the attrs values are not. (An aggregate is text.)"""
    kind = type(reply)
    if kind is _SIMPLE:
        return _SIMPLE_TAGS.get(reply.value) or (b"+", reply.value)
    if kind is _ERROR:
        return (b"!" if reply.bulk else b"-", reply.value)
    return reply


_SIMPLE_TAGS = {v: (b"+", v) for v in (b"OK", b"QUEUED", b"PONG", b"RESET")}  # shared


def _stored_size(stored) -> int:
    """The bytes of a reply ``_stored`` keeps as it is or as a tuple (0: a number, a nil)."""
    kind = type(stored)
    return len(stored) if kind is bytes else len(stored[1]) if kind is tuple else 0


def _value(stored):
    """The reply ``_stored`` kept, as the decoder made it (text stays text)."""
    if type(stored) is tuple:
        tag, value = stored
        return resp.Simple(value) if tag == b"+" else resp.Error(value, tag == b"!")
    return stored


def _segment_rows(segment: bytes):
    """The ``(ts, command, reply, latency)`` rows of a segment ``_ones`` encoded: its columns
    ``(stamps, commands, replies, latencies)`` marshalled, the replies as ``_stored`` keeps
    them or, when all are simple strings, ``(b"+", their values)``."""
    stamps, commands, replies, latencies = loads(segment)
    if type(replies) is tuple:
        tag, values = replies
        replies = [(tag, value) for value in values]
    return zip(stamps, commands, replies, latencies, strict=True)


def _exchanges(entry):
    """The ``(ts, command, stored reply, latency)`` of a RESP entry's exchanges, in order: its
    encoded rows (``capture.Rows``: segments of exchanges, ``_segment_rows``), or, for one
    exchange, ``(command, reply, latency)``, or for a run ``(commands, replies, latencies)``,
    marshalled or not; replies as ``_stored`` keeps them, an aggregate already as its text."""
    data = entry.data
    if is_encoded(data):  # segments of rows, each row with its time
        return _flat(map(_segment_rows, encoded_rows(data)))
    if entry.count == 1:
        return ((entry.ts, *data),)
    ts = entry.ts  # a run, marshalled or (long values) as it was
    runs = loads(data) if type(data) is bytes else data
    return ((ts, *exchange) for exchange in zip(*runs, strict=True))


def exchange_row(index: int, exchange, max_value: int = 200) -> dict:
    """The table row numbered ``index`` of one RESP ``exchange`` as ``_exchanges`` gives it."""
    ts, command, stored, latency = exchange
    text = type(stored) is str
    reply = stored if text else _value(stored)
    shown = reply if text else (
        command_summary(command, reply, max_value) or format_value(reply, max_value))
    return {"index": index, "ts": ts, "kind": "redis",
            "request": format_args(command, max_value), "reply": shown,
            "latency": latency, "request_size": command_size(command),
            "reply_size": None if text else reply_size(reply), "error": _is_error(stored)}


def _is_error(stored) -> bool:
    """Whether a reply as ``_stored`` keeps it is an error: a tagged error, or the text of an
    error under RESP3 attributes (it starts with "-", as the console shows it)."""
    kind = type(stored)
    return (kind is tuple and stored[0] != b"+") or (kind is str and stored.startswith("-"))


def rows(entry, max_value: int = 200) -> list[dict]:
    """The table rows of a ``capture.Exchanges`` entry the sink stored (JSON-ready): a RESP
    entry's exchanges (``_exchanges``) formatted with the console's formatting, another kind's
    row as it was stored (text already)."""
    first = entry.first
    if entry.kind == "redis":
        return [exchange_row(index, exchange, max_value)
                for index, exchange in enumerate(_exchanges(entry), first)]
    request, reply, latency, request_size, size = entry.data
    return [{"index": first, "ts": entry.ts, "kind": entry.kind, "request": request,
             "reply": reply, "latency": latency, "request_size": request_size,
             "reply_size": size, "error": bool(entry.errors)}]


# a command name format_args shows as it is (printable ASCII but the space, '"' and '\\')
_PLAIN_NAME = re.compile(rb"[!#-\[\]-~]+")


def command_name(command, max_value: int = 200) -> str | None:
    """The command name a filter reads in ``command``'s formatted row (the first word of
    ``format_args(command, max_value)``, upper-cased), without formatting: for a name of
    plain printable ASCII (no space, quote or backslash) within ``max_value`` bytes; None for
    any other (empty, escaped, cut, non-ASCII, a value the decoder cut): only its formatted
    row says."""
    if not command:
        return None
    name = command[0]
    if type(name) is not bytes or (max_value and len(name) > max_value):
        return None
    if name.isalpha() or _PLAIN_NAME.fullmatch(name):
        return name.decode("ascii").upper()
    return None


def peek(entry, max_value: int = 200):
    """What a filter tests of each row of a RESP entry, read from its stored form without
    formatting: ``(index, command name or None, latency, error, exchange)`` per row
    (``command_name``; ``exchange``: for ``exchange_row``, which formats that row alone);
    None for an entry of another kind (its row is text already: ``rows``)."""
    if entry.kind != "redis":
        return None
    return _peeked(entry, max_value)


def _peeked(entry, max_value: int):
    """The rows ``peek`` says of a RESP entry (a generator: read as far as the scan needs)."""
    for index, exchange in enumerate(_exchanges(entry), entry.first):
        yield (index, command_name(exchange[1], max_value), exchange[3], _is_error(exchange[2]),
               exchange)


class WebSink:
    """See the module docstring. ``capture``: the store the site reads."""

    takes_runs = True  # R.RedisExchanges records are welcome
    log = Logger()

    def __init__(self, capture: Capture | None = None, max_value: int = 200,
                 latency: Latency | None = None):
        self.capture = capture if capture is not None else Capture()
        self.latency = latency if latency is not None else Latency()  # the pictures' numbers
        self.max_value = max_value
        self.records: list = []  # queued records, in order
        self.reads: list = []  # queued reads: (pair, direction, data, now), in arrival order
        self.queued = 0  # what the queues hold, counted: RECORD_COST a record, READ_COST a read
        # the chain's hold-back per batch (``settle_with``; None: the chain settles each read)
        self.unsettled = None
        self.max_held = 0
        self.max_held_all = None
        self.kept: list = []  # reads not settled at the last flush, stored when they are
        # a reader of the capture or of the pictures sees all that was handed over
        self.capture.before_read.append(self.flush)
        self.latency.before_read.append(self.flush)

    def rows(self, entry) -> list[dict]:
        """The table rows of a stored entry (``rows``), values bounded at ``max_value``."""
        return rows(entry, self.max_value)

    def peek(self, entry):
        """What a filter tests of a stored entry's rows, without formatting (``peek``)."""
        return peek(entry, self.max_value)

    def exchange_row(self, index: int, exchange) -> dict:
        """One peeked exchange's table row (``exchange_row``), as ``rows`` would make it."""
        return exchange_row(index, exchange, self.max_value)

    # -- the queue (the hot path: an append, a count, a comparison) ------------------------------
    def emit(self, record) -> None:
        kind = type(record)
        if kind is _EXCHANGE:
            self.records.append(record)
            self.queued += RECORD_COST
        elif kind in _UNSTORED:
            return
        else:
            self.records.append(record)
            self.queued += RECORD_COST * len(record.commands) if kind is _RUN else RECORD_COST
        if self.queued > QUEUE_LIMIT:
            self._flush_records()

    def emit_many(self, records) -> None:
        self.records += records
        runs = sum(len(r.commands) - 1 for r in records if type(r) is _RUN)
        self.queued += RECORD_COST * (len(records) + runs)
        if self.queued > QUEUE_LIMIT:
            self._flush_records()

    def data(self, pair_id: int, direction: str, data: bytes, now: float) -> None:
        """Bytes the chain forwarded (after its hold-back): queued, stored at the flush."""
        self.reads.append((pair_id, direction, data, now))
        self.queued += READ_COST + 2 * len(data)
        if self.queued > QUEUE_LIMIT:
            self.flush()

    def flush(self) -> None:
        """Store what is queued: the records (a connection's unpipelined exchanges in one
        segment of rows), then the reads (``Capture.add_reads``). The capture calls it before
        every read and every change that must come after (``Capture.before_read``). A
        failure is logged and what it was storing dropped: it never reaches the proxy."""
        records, reads = self.records, self.reads
        if not (records or reads or self.kept):
            return
        self.records, self.reads, self.queued = [], [], 0
        try:
            if records:
                self._store(records)
        except Exception:
            self.log.failure("web view: cannot store {n} record(s); dropped", n=len(records))
        try:
            if self.unsettled is not None:
                reads = self._settled(reads)
            if reads:
                self.capture.add_reads(reads)
        except Exception:
            self.log.failure("web view: cannot store {n} read(s); dropped", n=len(reads))

    def _flush_records(self) -> None:
        """The queue is full at a record: the records are stored, the reads wait for the next
        ``flush`` (``data``'s, a reader's). A record comes while the chain decodes a read, when
        what it says is settled may be in flux (a RESP decoder giving up on a frame has not
        had its fallback search the frame yet)."""
        records, self.records = self.records, []
        # what they were counted as (see emit): the reads' count stays, with no pass over them
        self.queued -= RECORD_COST * (len(records) + sum(
            [len(r.commands) - 1 for r in records if type(r) is _RUN]))
        try:
            self._store(records)
        except Exception:
            self.log.failure("web view: cannot store {n} record(s); dropped", n=len(records))

    # -- the hold-back per batch (the chain's ``settles_later``) ----------------------------------
    settles_later = True  # the chain hands every read at once when the view is its only consumer

    def settle_with(self, unsettled, max_held: int, max_held_all: int | None = None) -> None:
        """The chain (``Chain.unsettled``): from which stream offset a pair's direction may
        still hold a secret; ``max_held``: the most bytes of a direction kept back;
        ``max_held_all``: over all of them (None: no bound of its own)."""
        self.unsettled = unsettled
        self.max_held = max_held
        self.max_held_all = max_held_all

    def _settled(self, reads: list) -> list:
        """Of ``reads`` (after what the last flush kept back), those the chain has settled;
        the rest is kept for a later flush. One question per connection and direction in the
        batch; a direction's read that is partly settled is cut. Beyond ``max_held`` kept bytes
        of a direction (or ``max_held_all`` over all: the directions keeping the most, the
        largest first, until the rest is within it), they are stored masked from where they
        stop being settled, as the chain's hold-back bounds do (the mask registered first, so they arrive masked)."""
        if self.kept:
            reads = self.kept + reads  # older: each connection's reads stay in order
            self.kept = []
        unsettled = self.unsettled
        stored = self.capture.connections
        late = {}
        for pair in set(map(_PAIR, reads)):
            if pair not in stored:  # evicted (or never here): its reads go nowhere anyway
                continue
            for direction in _DIRECTIONS:
                at = unsettled(pair, direction)
                if at is not None:
                    late[pair, direction] = at
        if not late:
            return reads
        settled, kept = [], []
        reached = {}  # (pair, direction) -> the stream offset its reads reached
        ends = {}  # (pair, direction) -> the stream offset its stored bytes reach
        for read in reads:
            key = read[:2]
            at = late.get(key)
            if at is None:
                settled.append(read)
                continue
            offset = reached.get(key)
            if offset is None:
                offset = ends[key] = self.capture.stream_end(*key)
            pair, direction, data, now = read
            end = reached[key] = offset + len(data)
            if end <= at:
                settled.append(read)
            elif offset >= at:
                kept.append(read)
            else:
                settled.append((pair, direction, data[:at - offset], now))
                kept.append((pair, direction, data[at - offset:], now))
        over = {key for key in late if reached.get(key, 0) - late[key] > self.max_held}
        if self.max_held_all is not None:  # over all connections: the largest give way
            held = {key: max(0, reached[key] - max(late[key], ends[key]))
                    for key in late if key in reached and key not in over}
            excess = sum(held.values()) - self.max_held_all
            if excess > 0:
                over |= _largest(held, excess)
        for key in over:  # the bound: no more holding; masked as a secret would be (what is
            # stored from there on went out masked before, or settled)
            self.capture.mask(*key, max(late[key], ends[key]), reached[key])
        if over:
            settled += [read for read in kept if read[:2] in over]
            kept = [read for read in kept if read[:2] not in over]
        self.kept = kept
        return settled

    def unstored(self, pair_id: int, direction: str) -> tuple[int, bytes] | None:
        """``(stream offset, bytes)`` of ``direction`` handed over and not stored yet (kept
        back or queued), or None when the view does not store the connection: what a decoder
        that gives up on a frame searches for secrets from the frame's start
        (``PairState.early``)."""
        if pair_id not in self.capture.connections:
            return None
        key = (pair_id, direction)
        data = b"".join([read[2] for read in self.kept if read[:2] == key]
                        + [read[2] for read in self.reads if read[:2] == key])
        return self.capture.stream_end(pair_id, direction), data

    def unsettled_end(self, pair_id: int, direction: str, at: int, find) -> None:
        """The chain's ``direction`` ended (FIN, close) with bytes from stream offset ``at`` on
        that the decoder never settled: stored now, masked from the first credential the
        chain's line scanner ``find(offset, data)`` finds in them (as its hold-back does). The
        mask is registered before they are stored: storing them may make the capture's bound
        evict the connection's oldest bytes, the credential's start with them."""
        self.flush()
        key = (pair_id, direction)
        mine = [read for read in self.kept if read[:2] == key]
        if mine:
            self.kept = [read for read in self.kept if read[:2] != key]
        offset, tail = self.capture.stream_from(pair_id, direction, at)
        if mine:
            tail += b"".join([read[2] for read in mine])
        first = find(offset, tail) if tail else None
        if first is not None:
            self.capture.mask(pair_id, direction, first, offset + len(tail))
        if mine:
            self.capture.add_reads(mine)

    def _store(self, records: list) -> None:
        """The queued records in order, a connection's unpipelined exchanges gathered (their
        order among its other records kept) and stored at once (``_ones``), and all of them
        counted in ``latency`` at once."""
        # what _ones stored: stamps, commands, replies, latencies; and whether an error is among
        timed: list = [[], [], [], [], False]
        if set(map(type, records)) == _EXCHANGES:  # unpipelined traffic: no loop per record
            records.sort(key=_PAIR_OF)  # stable: each connection's stay in order
            for pair, group in groupby(records, _PAIR_OF):
                self._ones(pair, list(group), timed)
            if timed[0]:
                self.latency.ones(*timed[:4], errors=timed[4])
            return
        ones: dict = {}  # pair -> its unpipelined exchanges not stored yet
        emit = self._emit
        for r in records:
            if type(r) is _EXCHANGE:
                group = ones.get(r.pair)
                if group is None:
                    ones[r.pair] = [r]
                else:
                    group.append(r)
            else:
                if ones and r.pair in ones:  # its exchanges before it come first
                    self._ones(r.pair, ones.pop(r.pair), timed)
                emit(r)
        for pair, group in ones.items():
            self._ones(pair, group, timed)
        if timed[0]:
            self.latency.ones(*timed[:4], errors=timed[4])

    def _one_by_one(self, pair, records: list) -> None:
        """A connection's unpipelined exchanges each stored through ``_one``."""
        one = self._one
        for r in records:
            one(pair, r.ts, r.command, r.reply, r.latency)

    def _ones(self, pair, records: list, timed: list) -> None:
        """A connection's unpipelined exchanges of a batch, in order: one segment of rows,
        its columns ``marshal``led at once (``_segment_rows``), the replies as ``_stored``
        keeps them; their columns are added to ``timed`` (the latency counts them). A batch
        with a reply that is not a scalar, a simple string or an error, or a long one (as
        ``_one`` says), goes one by one through ``_one``, and so do fewer than ``_FEW``
        exchanges (a short connection's, a batch a reader cut short)."""
        if len(records) < _FEW:  # a segment's own costs would not pay
            self._one_by_one(pair, records)
            return
        replies = list(map(_REPLY, records))
        kinds = set(map(type, replies))
        commands = list(map(_COMMAND, records))
        errors = 0
        if kinds <= _BULKS:  # GET's
            small = max(map(len, replies)) <= _ROW_LIMIT
            kept = replies
        elif kinds == _SIMPLES:  # SET's
            values = list(map(_VALUE, replies))
            small = max(map(len, values)) <= _ROW_LIMIT
            kept = (b"+", values)
        elif kinds <= _PLAIN:
            kept = list(map(_stored, replies))
            small = max(map(_stored_size, kept)) <= _ROW_LIMIT
            if _ERROR in kinds:
                errors = list(map(type, replies)).count(_ERROR)
        else:
            small = False
        if not small or (sum(map(len, _flat(commands))) > _ROW_LIMIT and  # rarely: each one
                         max(map(sum, map(map, repeat(len), commands))) > _ROW_LIMIT):
            self._one_by_one(pair, records)
            return
        stamps = list(map(_TS, records))
        latencies = list(map(_LATENCY, records))
        self.capture.add_rows(pair, stamps[0], "redis",
                              dumps((stamps, commands, kept, latencies), _MARSHAL),
                              len(records), errors)
        if errors:
            timed[4] = True
        timed[0].extend(stamps)
        timed[1].extend(commands)
        timed[2].extend(replies)
        timed[3].extend(latencies)

    # -- records -----------------------------------------------------------------------------
    def _one(self, pair, ts, command, reply, latency) -> None:
        """One exchange (unpipelined traffic: the hot path there): ``(ts, command, reply,
        latency)`` marshalled into the connection's growing rows (``Capture.add_row``: no
        object kept per exchange), the reply as ``_stored`` keeps it, an aggregate as its text.
        A long one (a command or a reply over ``_ROW_LIMIT`` bytes: a value the decoder may
        have cut, which marshal would not say) is an entry of its own, as ``_kept_one``."""
        self.latency.one(ts, command, reply, latency)
        kind = type(reply)
        errors = 0
        if kind is bytes:
            small = len(reply) <= _ROW_LIMIT
        elif kind is _SIMPLE or kind is _ERROR:
            small = len(reply.value) <= _ROW_LIMIT
            errors = 1 if kind is _ERROR else 0
            reply = _stored(reply)
        elif kind in _AS_IS:
            small = True
        elif kind is _TRUNCATED:
            small = False
        else:  # an aggregate or an attributed reply: its text (an attributed error's says "-")
            reply = format_value(reply, self.max_value)
            small = True
            errors = 1 if reply.startswith("-") else 0
        if small and sum(map(len, command)) <= _ROW_LIMIT:
            self.capture.add_rows(pair, ts, "redis", dumps(([ts], [command], [reply], [latency]),
                                                           _MARSHAL), 1, errors)
        else:
            self._kept_one(pair, ts, command, reply, latency, errors)

    def _kept_one(self, pair, ts, command, reply, latency, errors) -> None:
        """One exchange as an entry of its own, ``(command, reply, latency)``, ``reply`` as
        ``_one`` made it."""
        cost = sum(map(len, command))
        if cost > _KEPT:  # long arguments: count what the decoder keeps of each
            cost = sum(min(len(a), _KEPT) for a in command)
        cost += _PER_COMMAND + _PER_ARG * len(command)
        kind = type(reply)
        if kind is bytes or kind is str:
            cost += len(reply)
        elif kind is tuple:  # a simple string or an error, as _stored keeps it
            cost += len(reply[1])
        else:
            cost += min(len(reply), _KEPT) if kind is _TRUNCATED else 8
        self.capture.add_exchanges(pair, ts, "redis", (tuple(command), reply, latency), 1, errors,
                                   cost)

    def _redis(self, pair, ts, commands, replies, latencies, types) -> None:
        """A pipelined run (the hot path of pipelined traffic): one entry, ``(commands,
        replies, latencies)`` ``marshal``led into one bytes (a tuple of them when a value is
        long: one the decoder may have cut, which marshal would not say); scalars are kept as
        they are and formatted when read, an aggregate reply is formatted now (bounded text).
        ``types``: the replies' types (``RedisExchanges.types``)."""
        if len(commands) == 1:
            self._one(pair, ts, commands[0], replies[0], latencies[0])
            return
        self.latency.redis(ts, commands, replies, latencies)
        args = sum(map(len, _flat(commands)))
        errors = 0
        if types <= _BULKS:  # the common cases first: GET's, SET's
            size = sum(map(len, replies))
            kept = replies
        elif types <= _LINES:
            size = sum(map(len, map(_VALUE, replies)))
            if _ERROR in types:
                errors = sum(1 for reply in replies if type(reply) is _ERROR)
            first = replies[0]
            if replies.count(first) == len(replies):  # SET's: one shared +OK (identity: fast)
                kept = (_stored(first),) * len(replies)
            else:
                kept = tuple(map(_stored, replies))
        else:
            kept = list(replies)
            size = 0
            scalars = _SCALARS
            for i, reply in enumerate(replies):
                kind = type(reply)
                if kind in scalars:
                    size += min(len(reply), _KEPT) if kind is bytes or kind is _TRUNCATED else 8
                elif kind is _SIMPLE or kind is _ERROR:
                    errors += kind is _ERROR
                    size += len(reply.value)
                    kept[i] = _stored(reply)
                else:  # its text (an attributed error's says "-", as its row does)
                    kept[i] = shown = format_value(reply, self.max_value)
                    errors += shown.startswith("-")
                    size += len(shown)
        if args + size <= _KEPT and _TRUNCATED not in types:
            data = dumps((commands, kept, latencies), _MARSHAL)
            cost = len(data) + _PER_BLOB
        else:
            data = (tuple(commands), tuple(kept), tuple(latencies))
            if args > _KEPT:  # long arguments: count what the decoder keeps of each
                args = sum(min(len(a), _KEPT) for command in commands for a in command)
            cost = (args + size + _PER_COMMAND * len(commands)
                    + _PER_ARG * sum(map(len, commands)))
        self.capture.add_exchanges(pair, ts, "redis", data, len(commands), errors, cost)

    def _row(self, pair, ts, kind, request, reply="", latency=None, request_size=None,
             size=None, error=False) -> None:
        self.capture.add_exchanges(pair, ts, kind, (request, reply, latency, request_size, size),
                                   1, int(error), _PER_ROW + len(request) + len(reply))

    def _emit(self, r) -> None:
        """One record stored (``flush`` gathers the unpipelined exchanges first)."""
        kind = type(r)
        if kind is _EXCHANGE:  # one exchange (unpipelined traffic: the most records)
            self._one(r.pair, r.ts, r.command, r.reply, r.latency)
        elif kind is _RUN:
            self._redis(r.pair, r.ts, r.commands, r.replies, r.latencies, r.types())
        elif kind is _HTTP:
            self._http(r)
        elif kind is R.FaultedRedisExchange:  # the mark rides on the error shown
            reply = r.reply
            if type(reply) is _ERROR and r.injected:
                reply = _ERROR(reply.value + f" [injected: {r.fault}]".encode(), reply.bulk)
            self._one(r.pair, r.ts, r.command, reply, r.latency)
        elif kind is _PUSH:
            self._row(r.pair, r.ts, "push", "(push)", format_value(r.value, self.max_value))
        elif kind is _UNANSWERED:
            self._row(r.pair, r.ts, "unanswered", format_args(r.command, self.max_value),
                      "(no reply)", request_size=command_size(r.command))
        elif kind is _DETECTED:
            self.capture.detected(r.pair, r.protocol)
        elif kind is _UNDECODABLE:
            self._row(r.pair, r.ts, "error", f"undecodable {r.direction} ({r.protocol})",
                      escape(r.reason.encode()), error=True)
        elif kind is _NOTICE:  # an HTTP switch's says the answer's Upgrade header
            self._row(r.pair, r.ts, "notice", escape(r.message.encode()))

    def _http(self, r) -> None:
        limit = self.max_value
        method = escape(r.method or b"?")
        target = format_args([r.target or b""], limit) if r.target is not None else ""
        request = f"{method} {target}".strip()
        if r.status is None:
            reply, error = "(no response)", False
        else:
            reply = f"{r.status} {escape(r.reason[:limit] if limit else r.reason)}".strip()
            if not r.complete:
                reply += " (incomplete)"
            if r.fault is not None:
                reply += fault_mark(r)
            error = r.status >= 400
        self.latency.http(r.ts, r.method, r.status, r.latency)
        self._row(r.pair, r.ts, "http", request, reply, r.latency, r.request_body_size,
                  r.response_body_size, error)

    # -- the byte path (the pcap sink's contract) ---------------------------------------------
    def pair_opened(self, pair, now: float) -> None:
        self.capture.opened(pair.id, now, str(pair.client), str(pair.listen), pair.target,
                            str(pair.server) if pair.server is not None else "")

    def half_closed(self, pair_id: int, direction: str, now: float) -> None:
        self.capture.half_closed(pair_id, direction, now)

    def pair_closed(self, pair_id: int, summary: dict, now: float) -> None:
        self.capture.closed(pair_id, now, str(summary.get("closed_by", "")),
                            str(summary.get("how", "")), summary.get("bytes_c2s"),
                            summary.get("bytes_s2c"), str(summary.get("reason", "")))

    def mask(self, pair_id: int, direction: str, start: int, end: int) -> int:
        return self.capture.mask(pair_id, direction, start, end)

    def decoded(self, pair_id: int, protocol: str) -> None:
        self.capture.detected(pair_id, protocol)


def _largest(held: dict, excess: int) -> set:
    """The keys of ``held`` (key -> bytes kept back), the largest first, whose bytes make up
    ``excess``: those that stop being held, as the chain's hold-back does (``Chain._shed``)."""
    out = set()
    for key in sorted(held, key=held.__getitem__, reverse=True):
        if excess <= 0:
            break
        out.add(key)
        excess -= held[key]
    return out
