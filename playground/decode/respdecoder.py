"""A passive RESP conversation decoder: pairs each Redis reply with its command (pure, no I/O).

``RespConversation.feed(direction, data, now) -> events`` takes both directions of one proxied
connection ("c2s" commands, "s2c" replies), ``eof(direction, now)`` and ``close(now)`` their
ends, and produces:

* :class:`Exchange` per answered command, in pipeline order, with the latency from the feed that
  completed the command to the feed that completed its reply (a named tuple: the hot path
  makes one per command, about as cheap as a plain tuple, read by field name);
* with ``runs=True``, :class:`Answered` instead for ordinary commands that one read answers
  together (pipelining): their commands, replies and latencies matched in bulk, as lists,
  with no object per exchange;
* :class:`ServerPush` for what is not a reply: pub/sub messages (RESP2 arrays while subscribed,
  RESP3 ``>`` pushes), client-tracking invalidations, MONITOR's stream lines, and replies nobody
  asked for;
* :class:`Unanswered` for commands still waiting when the server side closes;
* :class:`Undecodable` once when a direction stops being RESP (it is not decoded any further);
* :class:`SecretRange` with the stream offsets of passwords inside command frames (``AUTH``,
  ``HELLO ... AUTH``, ``MIGRATE ... AUTH/AUTH2``, ``CONFIG SET requirepass/masterauth``,
  ``ACL SETUSER`` password rules), emitted before the command's exchange, so a pcap writer can
  mask them with same-length filler; :func:`redact_command` is the display counterpart.

Followed: ``HELLO 3``/``HELLO 2`` (the ``protocol`` field of events), SUBSCRIBE and friends (one
exchange per command whose reply lists all its confirmations; RESP2 subscribed mode),
MULTI/EXEC/DISCARD (commands in between are ``in_transaction``; EXEC's exchange lists the
``queued`` commands its reply answers), ``CLIENT REPLY OFF|SKIP|ON`` (commands whose reply is
suppressed come out in order as exchanges with ``suppressed=True`` and no reply), MONITOR,
QUIT and RESET. Inline commands (typed into nc/telnet) are understood like Redis does.

Bounded: the parsers' ``max_bulk``/``max_depth``/``max_inline``, and ``max_pending`` commands
awaiting replies (beyond it both directions are reported undecodable and pairing stops). With
``max_value`` the parsers stream long strings (arguments, replies, MONITOR lines) instead of
collecting them: their first ``max_value`` bytes and full length come as a ``resp.Truncated``,
so what a conversation holds does not grow with ``max_bulk``.

:class:`RespStream` is the conversation as the decoder chain (``playground.decode.chain``) uses
it: events in, records (``playground.decode.records``) out to the chain's sinks.
"""

from __future__ import annotations

import re
from collections import deque
from itertools import count as _count
from itertools import repeat as _repeat
from operator import attrgetter, itemgetter
from typing import NamedTuple

import attrs

from playground.codec.encoder import encode
from playground.codec.parser import NOT_ONE, RespParser, SpanRun
from playground.codec.values import (
    Attributed,
    Error,
    Inline,
    Map,
    ProtocolError,
    Push,
    Set,
    Simple,
    Truncated,
    Verbatim,
)
from playground.decode import records as R
from playground.decode.detect import RESP
from playground.decode.httpdecoder import secret_value
from playground.decode.redaction import (
    REDACTED,
    SECRET_COMMANDS,
    SECRET_CONFIG,
    SECRET_HEADERS,
)
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT

C2S, S2C = CLIENT_TO_SERVER, SERVER_TO_CLIENT  # the directions, as the proxy names them


class Exchange(NamedTuple):
    """A command and its reply: what ``feed``, ``eof`` and ``close`` give per answered command.

    A named tuple, made on the hot path with ``tuple.__new__`` (``_exchange``): about as cheap
    as a plain tuple, read by field name. ``reply`` is a list of confirmations for
    (P|S)(UN)SUBSCRIBE with several channels; ``queued`` (EXEC only) holds the commands the
    reply's items answer. ``latency`` is set once, when the reply completes:
    ``replied_at - sent_at`` (None, like ``reply`` and ``replied_at``, for a ``suppressed``
    command). ``start`` and ``end`` locate the command frame in the c2s stream; read them
    through ``span``, ``offset`` and ``size``: for a command parsed in a pipelined run,
    ``start`` is the run (a ``resp.SpanRun``) and ``end`` the command's index in it, worked out
    only when asked."""

    # the command, as it waits for its reply (an ordinary one as these five in a plain tuple)
    command: tuple
    name: bytes  # command[0] upper-cased (b"" when it is not bytes)
    sent_at: float
    start: int | SpanRun
    end: int
    # the answer
    reply: object
    replied_at: float | None
    latency: float | None
    protocol: int
    in_transaction: bool = False
    queued: tuple = ()
    suppressed: bool = False  # CLIENT REPLY OFF/SKIP: no reply was sent, by request

    @property
    def span(self) -> tuple[int, int]:
        """The command frame's c2s stream offsets ``(start, end)``."""
        start = self.start
        if type(start) is SpanRun:
            return start.span(self.end)
        return start, self.end

    @property
    def offset(self) -> int:
        """The c2s stream offset of the command frame."""
        return self.span[0]

    @property
    def size(self) -> int:
        """The command frame's length in bytes."""
        start, end = self.span
        return end - start


class Answered(NamedTuple):
    """Ordinary commands (one reply each, outside MULTI and CLIENT REPLY OFF/SKIP) that one
    read answered, in order: what :class:`Exchange` events would say of them (their
    ``command``, ``reply`` and ``latency``), as three lists matched in bulk. Given instead of
    those exchanges by a conversation made with ``runs=True``, for two or more replies."""

    commands: list  # each a sequence of bytes: a list as the parser gave it, or a tuple
    replies: list
    latencies: list
    reply_types: frozenset  # the replies' types (made once here, looked at by every sink)


# ``_exchange(Exchange, (all twelve fields))``: the named tuple made without its Python-level
# ``__new__`` (the hot path makes one per answered command; and an ``Answered`` per read)
_exchange = tuple.__new__


@attrs.frozen
class ServerPush:
    """An out-of-band server value. ``kind``: ``message``, ``pmessage``, ``smessage``,
    ``subscribe`` (a confirmation no command waits for), ``invalidate``, ``monitor``,
    ``unsolicited`` (a reply with no command waiting), ..."""

    value: object
    at: float
    kind: str
    protocol: int = 2


@attrs.frozen
class Unanswered:
    command: tuple
    sent_at: float
    at: float
    reason: str
    in_transaction: bool = False
    protocol: int = 2


@attrs.frozen
class Undecodable:
    direction: str
    at: float
    reason: str
    offset: int | None


@attrs.frozen
class SecretRange:
    """Bytes ``[start, end)`` of ``direction``'s stream hold a secret."""

    direction: str
    start: int
    end: int


# ---------------------------------------------------------------------------------------------
# secrets

# HTTP read as RESP (``--decode resp`` forced on HTTP traffic): each header line is an inline
# command whose first token is the header's name and its colon, the value's start glued to it
# when no space follows the colon. A credential header's line hides all after its colon, as the
# HTTP decoder hides its value; it is named by its upper-cased name and colon (``COOKIE:``),
# never by its first token (which may hold the start of the secret).
HEADER_NAMES = frozenset(h.upper() + b":" for h in SECRET_HEADERS)  # as a command's name


def header_secret(first: bytes) -> int:
    """For a first token that starts with a credential header's name and colon (any case): the
    length of that name and colon (where the secret value starts); else 0. The HTTP decoder's
    own look at a header line (``httpdecoder.secret_value``), on the token."""
    if 58 not in first:  # no ":": the common case, one C scan
        return 0
    found = secret_value(first)
    return 0 if found is None else first.index(b":") + 1


def secret_name(first) -> bool:
    """Whether a command whose first argument is ``first`` may carry a secret: one of
    ``SECRET_COMMANDS``, or a credential header's line (``header_secret``)."""
    return type(first) is bytes and (first.upper() in SECRET_COMMANDS or bool(header_secret(first)))


def secret_parts(args) -> list:
    """``(index, skip)`` for each argument holding a secret: bytes ``skip:`` of ``args[index]``
    are secret (``skip`` is 1 for ACL rules like ``>password``, whose first byte is the rule;
    for a credential header's line read as a command, the header's name and colon)."""
    n = len(args)
    if not n or not all(isinstance(a, bytes) for a in args):  # resp.Truncated too
        return []
    skip = header_secret(args[0])
    if skip:
        return ([(0, skip)] if len(args[0]) > skip else []) + [(i, 0) for i in range(1, n)]
    if n < 2:
        return []
    name = args[0].upper()
    if name == b"AUTH":
        return [(i, 0) for i in range(2 if n == 3 else 1, n)]
    if name == b"HELLO":
        out = []
        i = 2 if args[1].isdigit() else 1
        while i < n:
            opt = args[i].upper()
            if opt == b"AUTH":
                if i + 2 < n:
                    out.append((i + 2, 0))
                elif i + 1 < n:
                    out.append((i + 1, 0))  # malformed: hide what may be a password
                i += 3
            elif opt == b"SETNAME":
                i += 2
            else:
                i += 1
        return out
    if name == b"MIGRATE":
        out = []
        i = 6
        while i < n:
            opt = args[i].upper()
            if opt == b"AUTH":
                if i + 1 < n:
                    out.append((i + 1, 0))
                i += 2
            elif opt == b"AUTH2":
                if i + 2 < n:
                    out.append((i + 2, 0))
                i += 3
            elif opt == b"KEYS":
                break
            else:
                i += 1
        return out
    if name == b"CONFIG" and args[1].upper() == b"SET":
        return [(i + 1, 0) for i in range(2, n - 1, 2) if args[i].lower() in SECRET_CONFIG]
    if name == b"ACL" and args[1].upper() == b"SETUSER":
        return [(i, 1) for i in range(3, n) if args[i][:1] in (b">", b"<", b"#", b"!")]
    if name == b"SENTINEL" and n > 3:
        sub = args[1].upper()
        if sub == b"SET":  # SENTINEL SET master auth-pass pw ...
            return [(i + 1, 0) for i in range(3, n - 1, 2) if args[i].lower() == b"auth-pass"]
        if sub == b"CONFIG" and args[2].upper() == b"SET":  # ... CONFIG SET sentinel-pass pw
            return [(i + 1, 0) for i in range(3, n - 1, 2) if args[i].lower() in SECRET_CONFIG]
    return []


def _config_get(args) -> bool:
    """``CONFIG GET`` or ``SENTINEL CONFIG GET``: answered with parameter names and values."""
    n = len(args)
    if n < 2 or type(args[0]) is not bytes or type(args[1]) is not bytes:
        return False
    name = args[0].upper()
    if name == b"SENTINEL":
        return n >= 3 and type(args[2]) is bytes and args[1].upper() == b"CONFIG" and (
            args[2].upper() == b"GET")
    return name == b"CONFIG" and args[1].upper() == b"GET"


def _acl_listing(args) -> bytes | None:
    """``LIST`` or ``GETUSER`` when ``args`` is ``ACL LIST`` or ``ACL GETUSER``: answered with
    the users' password hashes (SHA-256), which ``ACL SETUSER``'s ``#hash`` rule hides."""
    if len(args) < 2 or type(args[0]) is not bytes or type(args[1]) is not bytes or (
            args[0].upper() != b"ACL"):
        return None
    sub = args[1].upper()
    return sub if sub == b"LIST" or sub == b"GETUSER" else None


# a password hash in an ``ACL LIST`` line (``user bob on #e8f3... ~* +get``): its hex digits
_ACL_HASH = re.compile(rb"(?:^|(?<= ))#([^ ]+)")


def _answer_secret(args) -> bool:
    """May the answer to ``args`` hold a password? ``CONFIG GET``'s, ``ACL LIST``'s and ``ACL
    GETUSER``'s (hashes), and an error echoing a command's own secret (``ACL SETUSER u <pw`` is
    answered ``-ERR ... modifier '<pw': ...``)."""
    return _config_get(args) or _acl_listing(args) is not None or bool(secret_parts(args))


def _echoed(args, error: bytes) -> list:
    """The ``(start, end)`` of each of ``args``' secrets in the text of an ``error`` answer (as
    Redis writes it: line ends turned to spaces); a secret kept only in part (``Truncated``)
    is covered from its start to the end of the text."""
    out = []
    for i, skip in secret_parts(args):
        value = args[i]
        cut = len(value) != bytes.__len__(value)
        value = bytes(value)[skip:]
        if not value:
            continue
        for v in {value, value.replace(b"\r", b" ").replace(b"\n", b" ")}:
            at = error.find(v)
            while at >= 0:
                out.append((at, len(error) if cut else at + len(v)))
                at = error.find(v, at + 1)
    return sorted(out)


def _secret_config(name, value) -> bool:
    """Is ``value`` (of parameter ``name`` in a ``CONFIG GET`` answer) a password? ``name`` a
    bulk string as Redis sends it, or a simple or verbatim one (another server's RESP3)."""
    name = _string(name)
    return isinstance(name, bytes) and name.lower() in SECRET_CONFIG and bool(value)


def redact_reply(args, reply):
    """``CONFIG GET requirepass`` (or a pattern matching it) answers with the password: the
    values of secret parameters hidden, in a RESP2 flat array or a RESP3 map reply; and an
    error answer's copy of the command's own secret."""
    if type(reply) is Error:
        found = _echoed(args, reply.value)
        if not found:
            return reply
        value = reply.value
        out, at = [], 0
        for s, e in found:
            if e > at:
                out.append(value[at:max(at, s)] + REDACTED)
                at = e
        return Error(b"".join(out) + value[at:], reply.bulk)
    if not _config_get(args):
        return _redact_acl(_acl_listing(args), reply)

    def hide(name, value):
        return REDACTED if _secret_config(name, value) else value

    kind = type(reply)
    if kind is Attributed:  # a RESP3 server's attributes before it
        shown = redact_reply(args, reply.value)
        return reply if shown is reply.value else Attributed(reply.attributes, shown)
    if isinstance(reply, list) or kind is Set:
        out = list(reply.items if kind is Set else reply)
        for i in range(0, len(out) - 1, 2):
            out[i + 1] = hide(out[i], out[i + 1])
        return Set(tuple(out)) if kind is Set else out
    if isinstance(reply, Map):
        return Map(tuple((k, hide(k, v)) for k, v in reply.items))
    return reply


def _redact_acl(kind, reply):
    """``reply`` to ``ACL LIST`` (``kind``) with its hashes hidden (``#(redacted)``), or to
    ``ACL GETUSER`` with its ``passwords`` hidden; the same object when there is none."""
    if kind == b"LIST" and type(reply) is list:
        out = [_acl_line_hidden(x) for x in reply]
        return out if out != reply else reply
    if kind == b"GETUSER":
        at = _acl_passwords(reply)
        if at is not None:
            flat = list(reply) if type(reply) is list else [x for i in reply.items for x in i]
            flat[at] = [REDACTED] * len(flat[at])
            if type(reply) is list:
                return flat
            return Map(tuple(zip(flat[::2], flat[1::2], strict=True)))
    return reply


def _acl_line_hidden(line):
    """An ``ACL LIST`` line with its hashes hidden: a bulk string as Redis sends it, or a simple
    or verbatim one (another server's); anything else as it is."""
    kind = type(line)
    if kind is bytes:
        return _ACL_HASH.sub(b"#" + REDACTED, line)
    if kind is Simple:
        return Simple(_ACL_HASH.sub(b"#" + REDACTED, line.value))
    if kind is Verbatim:
        return Verbatim(line.format, _ACL_HASH.sub(b"#" + REDACTED, line.text))
    return line


def _acl_passwords(reply) -> int | None:
    """Where the (not empty) list of password hashes is in an ``ACL GETUSER`` answer (RESP2's
    flat array, RESP3's map: its index among the keys and values), or None."""
    if type(reply) is list:
        flat = reply
    elif type(reply) is Map:
        flat = [x for item in reply.items for x in item]
    else:
        return None
    for i in range(0, len(flat) - 1, 2):
        if flat[i] == b"passwords" and type(flat[i + 1]) is list and flat[i + 1]:
            return i + 1
    return None


def _acl_ranges(kind, reply, start: int, end: int) -> list:
    """``reply_secret_ranges`` of an ``ACL LIST`` or ``ACL GETUSER`` answer: each hash's bytes
    when the frame is as Redis writes it, else the whole frame (when it hides any)."""
    if _redact_acl(kind, reply) is reply:
        return []
    out = []
    if kind == b"LIST":
        if any(type(x) is not bytes for x in reply):  # not as Redis writes it
            return [(start, end)]
        pos = start + 3 + len(str(len(reply)))
        for x in reply:
            head = 3 + len(str(len(x)))
            out += [(pos + head + m.start(1), pos + head + m.end(1)) for m in _ACL_HASH.finditer(x)]
            pos += head + len(x) + 2
        return out if pos == end else [(start, end)]
    at = _acl_passwords(reply)
    protocol = 3 if type(reply) is Map else 2
    flat = reply if type(reply) is list else [x for item in reply.items for x in item]
    pos = start + 3 + len(str(len(flat) if type(reply) is list else len(reply.items)))
    try:
        for i, x in enumerate(flat):
            if i == at and all(type(h) is bytes for h in x):
                p = pos + 3 + len(str(len(x)))
                for h in x:
                    head = 3 + len(str(len(h)))
                    out.append((p + head, p + head + len(h)))
                    p += head + len(h) + 2
            pos += len(encode(x, protocol))
    except (TypeError, ValueError):  # a value encode does not take: not as Redis writes it
        return [(start, end)]
    return out if out and pos == end else [(start, end)]


def reply_secret_ranges(args, reply, start: int, end: int) -> list:
    """Stream ranges ``(start, end)`` of the passwords in the answer to ``args`` (what
    ``redact_reply`` hides), whose frame spans ``start`` to ``end``: each secret value's bytes
    when the frame is the canonical encoding of ``reply`` (Redis' is), else the whole frame."""
    if type(reply) is Error:
        found = _echoed(args, reply.value)
        if not found:
            return []
        n = len(reply.value)
        at = start + (3 + len(str(n)) if reply.bulk else 1)
        if at + n + 2 != end:
            return [(start, end)]
        return [(at + s, at + e) for s, e in found]
    if not _config_get(args):
        kind = _acl_listing(args)
        return [] if kind is None else _acl_ranges(kind, reply, start, end)
    if isinstance(reply, list):
        flat, count = reply, len(reply)
    elif isinstance(reply, Map):
        flat = [x for item in reply.items for x in item]
        count = len(reply.items)
    elif type(reply) in (Set, Attributed):  # not Redis' shape: the whole frame, if it hides any
        return [(start, end)] if redact_reply(args, reply) != reply else []
    else:
        return []
    hidden = {i + 1 for i in range(0, len(flat) - 1, 2) if _secret_config(flat[i], flat[i + 1])}
    if not hidden:
        return []
    if not all(type(x) is bytes for x in flat):
        return [(start, end)]
    out = []
    pos = start + 3 + len(str(count))
    for i, x in enumerate(flat):
        head = 3 + len(str(len(x)))
        if i in hidden:
            out.append((pos + head, pos + head + len(x)))
        pos += head + len(x) + 2
    return out if pos == end else [(start, end)]


def redact_exec(queued, reply):
    """EXEC's answer with each queued command's answer redacted (``redact_reply``)."""
    if type(reply) is not list or len(reply) != len(queued):
        return reply
    if not any(_answer_secret(a) for a in queued):
        return reply
    return [redact_reply(a, r) if _answer_secret(a) else r for a, r in zip(queued, reply, strict=True)]


def _plain(v) -> bool:
    """Is ``v`` one ``encode`` gives Redis' own bytes for (its length is its frame's)?"""
    t = type(v)
    return v is None or t is bytes or t is int or t is Simple or t is Error or (
        t is list and all(type(x) is bytes for x in v)) or (
        t is Map and all(type(x) is bytes for item in v.items for x in item))


def exec_secret_ranges(queued, reply, start: int, end: int, protocol: int) -> list:
    """``reply_secret_ranges`` for the answers inside EXEC's answer (frame ``start``-``end``):
    each element's place follows from the ones before it when they are all as Redis writes
    them; else the whole frame, if any of them hides something."""
    if type(reply) is not list or len(reply) != len(queued):
        return []
    out = []
    pos = start + 3 + len(str(len(reply)))
    exact = True
    for args, r in zip(queued, reply, strict=True):
        n = len(encode(r, protocol)) if exact and _plain(r) else None
        if _answer_secret(args):
            if n is None:
                if redact_reply(args, r) is not r:
                    return [(start, end)]
            else:
                out += reply_secret_ranges(args, r, pos, pos + n)
        if n is None:
            exact = False
        else:
            pos += n
    if out and not (exact and pos == end):
        return [(start, end)]
    return out


def refused(args) -> bool:
    """Whether ``args`` is a secret command (``secret_name``) sent as an array that is not all
    bulk strings (an integer, a simple string, a nested array in it; its name may be such a
    string, or the first of such an array: ``*1 *2 AUTH pw``): Redis refuses it ("Protocol
    error: expected '$'"), but its password went over the wire, and where it is in the frame
    is not known: all its arguments are hidden, its frame masked whole."""
    if all(isinstance(a, bytes) for a in args):
        return False
    first = args[0]
    while type(first) is list and first:
        first = first[0]
    return secret_name(_string(first))


def _string(value):
    """The bytes of a RESP string value (bulk, simple or verbatim); ``value`` if it is none."""
    kind = type(value)
    return value.value if kind is Simple else value.text if kind is Verbatim else value


def redact_command(args) -> tuple:
    """``args`` with every secret replaced by ``b"(redacted)"`` (an ACL rule keeps its first
    byte: ``>(redacted)``); all but the name of a command Redis refuses (``refused``)."""
    args = tuple(args)
    if args and refused(args):
        name = args[0] if type(_string(args[0])) is bytes else REDACTED  # not an array's
        return (name,) + (REDACTED,) * (len(args) - 1)
    parts = secret_parts(args)
    if not parts:
        return args
    out = list(args)
    for i, skip in parts:
        out[i] = out[i][:skip] + REDACTED
    return tuple(out)


_INLINE_TOKEN = re.compile(rb"[^ \t\r\n\x0b\x0c]+")


def secret_ranges(args, frame: bytes | None = None, start: int = 0) -> list:
    """Stream ranges ``(start, end)`` of the secrets of a command whose frame begins at ``start``.

    For an array of bulk strings the positions follow from the arguments (lengths are
    canonical); for an inline command pass the ``frame`` bytes: each secret's whole token, quotes
    included, is covered.
    """
    parts = secret_parts(args)
    if not parts:
        return []
    if frame is None:
        wanted = dict(parts)
        out = []
        pos = start + 3 + len(str(len(args)))
        for i, a in enumerate(args):
            head = 3 + len(str(len(a)))
            if i in wanted:
                skip = wanted[i]
                if len(a) > skip:
                    out.append((pos + head + skip, pos + head + len(a)))
            pos += head + len(a) + 2
        return out
    # Inline: token boundaries without quotes are exact; with quotes, a quoted token may
    # contain spaces, so cover from the secret's token to the end of the line (over-masking).
    tokens = [(m.start(), m.end()) for m in _INLINE_TOKEN.finditer(frame)]
    quoted = b'"' in frame or b"'" in frame or b"\x00" in frame
    out = []
    for i, skip in parts:
        if quoted:
            first = tokens[min(i, len(tokens) - 1)][0] if tokens else 0
            end = len(frame.rstrip(b"\r\n"))
            return [(start + first, start + end)] if end > first else []
        if i < len(tokens):
            s, e = tokens[i]
            if e - s > skip:
                out.append((start + s + skip, start + e))
    return out


# ---------------------------------------------------------------------------------------------
# the conversation

_SUB_KINDS = {
    b"SUBSCRIBE": b"subscribe",
    b"PSUBSCRIBE": b"psubscribe",
    b"SSUBSCRIBE": b"ssubscribe",
    b"UNSUBSCRIBE": b"unsubscribe",
    b"PUNSUBSCRIBE": b"punsubscribe",
    b"SUNSUBSCRIBE": b"sunsubscribe",
}
_CONFIRMATIONS = frozenset(_SUB_KINDS.values())
_SHARD_KINDS = frozenset({b"ssubscribe", b"sunsubscribe"})  # counted apart by the server
_SUBSCRIBES = frozenset({b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"})
_UNSUBSCRIBED = {
    b"unsubscribe": b"subscribe",
    b"punsubscribe": b"psubscribe",
    b"sunsubscribe": b"ssubscribe",
}
_MESSAGES = frozenset({b"message", b"pmessage", b"smessage"})
_MONITOR_LINE = re.compile(rb"\d+\.\d+ \[")
_QUEUED = Simple(b"QUEUED")
_OK = Simple(b"OK")
_RESET = Simple(b"RESET")
# Executed at once even inside MULTI (not queued).
_NOT_QUEUED = frozenset({b"EXEC", b"DISCARD", b"MULTI", b"WATCH", b"QUIT", b"RESET"})
# Commands that change the conversation's state when sent, or when answered.
_DONE_SPECIAL = frozenset({b"EXEC", b"DISCARD", b"MULTI", b"HELLO", b"MONITOR", b"RESET"})
_SECRET_NAMES = SECRET_COMMANDS | HEADER_NAMES
_SPECIAL = _SECRET_NAMES | _NOT_QUEUED | frozenset(_SUB_KINDS) | {b"CLIENT"} | _DONE_SPECIAL


_first = itemgetter(0)


# An ordinary command (one reply expected, outside MULTI and CLIENT REPLY OFF/SKIP) waits for its
# reply as a plain tuple: ``(args, name, sent_at, start, end)``, the first fields of its
# ``Exchange`` (``start`` may be a ``SpanRun`` and ``end`` the index in it). The ordinary
# commands of a pipelined run wait together as one ``_Run``. Either becomes a ``_Waiting`` only
# when something unusual comes for it (``_head``). All stay inside the conversation: what comes
# out is an ``Exchange`` or an ``Answered``.
_ORDINARY = tuple


class _Run:
    """Ordinary commands parsed in one go (a pipelined read), waiting for their replies as one
    entry of the queue: the parser's lists as they came (``commands``), ``first`` the index of
    the oldest one still waiting. Replies matched in bulk take slices of it (``_answered``);
    anything else turns what is left into one plain tuple per command first (``_explode``)."""

    __slots__ = ("commands", "sent_at", "run", "first")

    def __init__(self, commands, sent_at, run):
        self.commands = commands
        self.sent_at = sent_at
        self.run = run  # the SpanRun: command i's frame is run.span(i)
        self.first = 0

    def tuples(self) -> list:
        """What is left, one plain tuple per command (an ordinary command's, above)."""
        sent_at, run = self.sent_at, self.run
        return [(tuple(args), args[0].upper(), sent_at, run, i)
                for i, args in enumerate(self.commands[self.first:], self.first)]

# What is not the plain answer to an ordinary command (_feed_s2c's general loop says why).
_NOT_ANSWERS = frozenset({list, Push, ProtocolError})


class _Waiting:
    """A command awaiting its reply (or replies) with more to follow than an ordinary one: how
    many replies it expects, the ones come so far, whether it is in a transaction."""

    __slots__ = ("args", "name", "sent_at", "expected", "in_tx", "replies", "start", "end")

    def __init__(self, args, name, sent_at, expected, in_tx, start, end):
        self.args = args
        self.name = name  # args[0] upper-cased (b"" when it is not bytes)
        self.sent_at = sent_at
        self.expected = expected  # replies to wait for; None: decided by the first one
        self.in_tx = in_tx
        self.replies = None
        self.start = start  # or a SpanRun, and ``end`` the index in it (see Exchange.span)
        self.end = end


def _kind(v) -> str:
    items = v.items if type(v) is Push else v
    if items and type(items[0]) is bytes:
        return items[0].decode("latin-1").lower()
    return "push"


class RespConversation:
    """One proxied connection's RESP traffic, both directions; see the module docstring."""

    def __init__(
        self,
        max_bulk: int = 512 * 1024 * 1024,
        max_depth: int = 128,
        max_inline: int = 64 * 1024,
        max_pending: int = 100_000,
        max_value: int | None = None,
        runs: bool = False,
    ):
        self._runs = runs  # Answered for the ordinary replies of one read (see Answered)
        self._c2s = RespParser(max_bulk, max_depth, max_inline, inline=True, max_value=max_value)
        self._s2c = RespParser(max_bulk, max_depth, max_inline, max_value=max_value)
        self.max_pending = max_pending
        self.protocol = 2
        self._pending: deque = deque()
        self._extra = 0  # commands waiting in _Run entries beyond one per entry
        self._failed_c2s = False
        self._failed_s2c = False
        self._stopped = False
        # CONFIG GET commands awaiting their answer (which may hold a password to mask), and
        # the stream span of the reply being handled while there are any
        self._config_gets = 0
        self._span = None
        # client side (decided when a command is sent, as the server will process it)
        self._reply_off = False
        self._skip_next = False
        self._in_tx = False
        # server side (decided by replies)
        self._tx_queue: list = []
        self._monitor = False
        self._subs = {b"subscribe": set(), b"psubscribe": set(), b"ssubscribe": set()}
        self._sub_count = {False: 0, True: 0}  # the server's last count: (not) shard channels
        self._serial = _count()  # tells apart the subscriptions of cut names

    # -- public ---------------------------------------------------------------------------
    def feed(self, direction: str, data: bytes, now: float) -> list:
        """The events ``data`` completes, in order: an :class:`Exchange` per answered command,
        and the other events of the module docstring."""
        if direction == C2S:
            # The common case first: the read is one whole command, an ordinary one.
            if not (self._in_tx or self._reply_off or self._skip_next or self._failed_c2s
                    or self._stopped) and len(self._pending) + self._extra < self.max_pending:
                value = self._c2s.feed_command(data)
                if value is not None:
                    end = self._c2s.offset
                    name = value[0].upper() if value else b""
                    if name and name not in _SPECIAL:
                        self._pending.append((tuple(value), name, now, end - len(data), end))
                        return []
                    out: list = []
                    if value:  # Redis ignores "*0"
                        self._command(tuple(value), end - len(data), end, now, out, None)
                    return out
            return self._feed_c2s(data, now)
        # ... and the read is one whole scalar reply to an ordinary command.
        pending = self._pending
        if pending and not self._monitor and not self._failed_s2c and not self._stopped:
            head = pending[0]
            if type(head) is _ORDINARY:
                value = self._s2c.feed_reply(data)
                if value is not NOT_ONE:
                    pending.popleft()
                    out = [_exchange(Exchange, head + (value, now, now - head[2], self.protocol,
                                                       False, (), False))]
                    if pending and type(pending[0]) is not _ORDINARY:
                        self._release_suppressed(now, out)
                    return out
        return self._feed_s2c(data, now)

    def eof(self, direction: str, now: float, limit: int | None = None) -> list:
        """``direction``'s sender finished; after the server's, no reply can come: the
        commands still waiting come out (``Unanswered``). ``limit``: at most this many events;
        call again while ``pending``."""
        out: list = []
        if direction == S2C:
            self._flush_unanswered(now, "connection closed before a reply", out, limit)
        return out

    def close(self, now: float, limit: int | None = None) -> list:
        """The connection is gone: the commands still waiting come out (``Unanswered``).
        ``limit``: at most this many events; call again while ``pending``."""
        out: list = []
        self._flush_unanswered(now, "connection closed before a reply", out, limit)
        return out

    def settled(self, direction: str) -> int:
        """Bytes before this stream offset will not be found to hold a secret any more: all
        but an unfinished command that may still carry one (its name not read yet, or one of
        the commands that take passwords)."""
        if direction == C2S and not self._failed_c2s:
            parser = self._c2s
            start = parser.frame_start
            if start < parser.offset:
                name = parser.frame_head()
                if isinstance(name, bytes) and name.upper() not in SECRET_COMMANDS:
                    return parser.offset  # e.g. SET with a long value still coming
            return start
        if direction == S2C and self._config_gets and not self._failed_s2c:
            return self._s2c.frame_start  # a CONFIG GET answer may be arriving
        return (self._c2s if direction == C2S else self._s2c).offset

    def buffered(self) -> int:
        """Bytes of input the two parsers hold (see ``RespParser.buffered``)."""
        return self._c2s.buffered() + self._s2c.buffered()

    @property
    def pending(self) -> int:
        """Commands awaiting a reply."""
        return len(self._pending) + self._extra

    # -- client to server -----------------------------------------------------------------
    def _feed_c2s(self, data: bytes, now: float) -> list:
        out: list = []
        if self._failed_c2s or self._stopped:
            return out
        command = self._command
        pending = self._pending
        append = pending.append
        # The common case inline: an ordinary command (an array of bulk strings) expecting one
        # reply, outside MULTI and CLIENT REPLY OFF/SKIP; the rest goes through _command.
        plain = not (self._in_tx or self._reply_off or self._skip_next)
        room = self.max_pending - len(pending) - self._extra
        for value, start, end in self._c2s.feed_spans(data, lazy=True):
            if end is None:  # a run of commands (pipelining)
                if self._run(value, start, now, out):
                    break
                plain = not (self._in_tx or self._reply_off or self._skip_next)
                room = self.max_pending - len(pending) - self._extra
                continue
            t = type(value)
            if t is list and plain and room > 0 and value and type(value[0]) is bytes:
                name = value[0].upper()
                if name not in _SPECIAL:
                    append((tuple(value), name, now, start, end))
                    room -= 1
                    continue
            plain = False  # re-checked below
            if t is list:
                if value:  # Redis ignores "*0" (and "*-1")
                    command(tuple(value), start, end, now, out, None)
            elif t is Inline:
                command(value.args, start, end, now, out, value.line)
            elif t is ProtocolError:
                self._failed_c2s = True
                out.append(Undecodable(C2S, now, value.message, value.offset))
                break
            if self._stopped:
                break
            plain = not (self._in_tx or self._reply_off or self._skip_next)
            room = self.max_pending - len(pending) - self._extra
        return out

    def _run(self, values, run, now, out) -> bool:
        """A run of commands parsed in one go; True when pairing stopped."""
        pending = self._pending
        if not (self._in_tx or self._reply_off or self._skip_next) and all(values) and (
            len(values) <= self.max_pending - len(pending) - self._extra
        ):
            # the names, each distinct one upper-cased once (a run repeats a few names)
            if _SPECIAL.isdisjoint(map(bytes.upper, set(map(_first, values)))):
                # all ordinary: queued as one entry, as they are
                pending.append(_Run(values, now, run))
                self._extra += len(values) - 1
                return False
        command = self._command
        for i, value in enumerate(values):
            if value:  # Redis ignores "*0"
                start, end = run.span(i)
                command(tuple(value), start, end, now, out, None)
                if self._stopped:
                    return True
        return False

    def _command(self, args, start, end, now, out, line) -> None:
        """Follow command ``args`` (its frame from stream offset ``start`` to ``end``; ``line``:
        an inline command's bytes, else None)."""
        first = args[0]
        name = first.upper() if type(first) is bytes else b""
        if 58 in name:  # a ":": maybe a credential header's line (HTTP read as RESP)
            skip = header_secret(first)
            if skip:
                name = name[:skip]
        elif not name and line is None and refused(args):  # a name Redis refuses (+AUTH)
            out.append(SecretRange(C2S, start, end))
        pending = self._pending
        if name not in _SPECIAL and not (self._in_tx or self._reply_off or self._skip_next):
            # the common case: an ordinary command expecting one reply
            if len(pending) + self._extra >= self.max_pending:
                self._stop(now, out)
                return
            pending.append((args, name, now, start, end))
            return
        if name in _SECRET_NAMES:
            if line is None and refused(args):
                ranges = [(start, end)]
            else:
                ranges = secret_ranges(args, line, start)  # inline: the tokens in its bytes
            out.extend(SecretRange(C2S, s, e) for s, e in ranges)
            if _answer_secret(args):
                self._config_gets += 1
        expected = 1
        in_tx = self._in_tx
        if in_tx:
            if name in _NOT_QUEUED:
                if name == b"MULTI":
                    pass  # an error ("nested"); the transaction goes on
                else:
                    in_tx = False
                    if name != b"WATCH" and name != b"QUIT":
                        self._in_tx = False
        elif name == b"MULTI":
            self._in_tx = True
        elif name in _SUB_KINDS:
            n = len(args) - 1
            if n:
                expected = n  # one confirmation per argument, duplicates included
            elif name in _SUBSCRIBES:  # no channel: an arity error
                expected = 1
            else:
                expected = None  # one per current subscription, at least one
        # CLIENT REPLY, the way Redis applies its OFF / SKIP_NEXT / SKIP flags.
        skip_this = self._skip_next
        self._skip_next = False
        suppressed = self._reply_off or skip_this
        if name == b"RESET":
            self._reply_off = False
            suppressed = skip_this
        elif name == b"CLIENT" and len(args) == 3 and not in_tx:
            sub = args[1].upper() if type(args[1]) is bytes else b""
            how = args[2].upper() if type(args[2]) is bytes else b""
            if sub == b"REPLY":
                if how == b"ON":
                    self._reply_off = False
                    suppressed = False  # ON always replies
                elif how == b"OFF":
                    self._reply_off = True
                    suppressed = True
                elif how == b"SKIP":
                    if not self._reply_off:
                        self._skip_next = True
                    suppressed = True
        if suppressed:
            expected = 0
        if len(pending) + self._extra >= self.max_pending:
            self._stop(now, out)
            return
        p = _Waiting(args, name, now, expected, in_tx, start, end)
        if expected == 0 and not pending:
            self._suppressed(p, now, out)
        else:
            pending.append(p)

    # -- server to client -----------------------------------------------------------------
    def _feed_s2c(self, data: bytes, now: float) -> list:
        out: list = []
        if self._failed_s2c or self._stopped:
            return out
        reply = self._reply
        pending = self._pending
        append = out.append
        if self._config_gets:
            values = self._spanned(data)
        else:
            values = self._s2c.feed(data)
            if self._runs and len(values) > 1 and not self._monitor:
                answered = self._answered(values, now)
                if answered is not None:
                    return answered
        protocol = self.protocol
        for value in values:
            t = type(value)
            # The common case inline: a reply (not pub/sub, not MONITOR traffic) to the oldest
            # command, an ordinary one; the rest goes through _reply.
            if pending and type(pending[0]) is _ORDINARY and t is not list and t is not Push and (
                t is not ProtocolError and not (self._monitor and t is Simple)
            ):
                head = pending.popleft()
                append(_exchange(Exchange, head + (value, now, now - head[2], protocol, False,
                                                   (), False)))
                if pending and type(pending[0]) is not _ORDINARY:
                    self._release_suppressed(now, out)
                continue
            if t is ProtocolError:
                self._failed_s2c = True
                append(Undecodable(S2C, now, value.message, value.offset))
                break
            reply(value, now, out)
            protocol = self.protocol  # HELLO and RESET change it
        self._span = None
        return out

    def _answered(self, values: list, now: float) -> list | None:
        """``values`` (two or more replies, not MONITOR traffic) matched in bulk to the oldest
        commands when all are ordinary and every value is their plain answer (no pub/sub, no
        error of the parser): the events, an :class:`Answered` first; else None, nothing done.
        The commands of a ``_Run`` are matched as slices of it (all of it, the common case:
        one read answers one pipelined read)."""
        pending = self._pending
        n = len(values)
        if not pending or n > len(pending) + self._extra:
            return None
        kinds = self._s2c.last_types or frozenset(map(type, values))  # the parser may know
        if not _NOT_ANSWERS.isdisjoint(kinds):
            return None
        head = pending[0]
        if type(head) is _Run and len(head.commands) - head.first >= n:
            first = head.first
            if len(head.commands) - first == n:  # the rest of the run (all of it, mostly)
                commands = head.commands[first:] if first else head.commands
                pending.popleft()
                self._extra -= n - 1
            else:
                commands = head.commands[first:first + n]
                head.first = first + n
                self._extra -= n
            out = [_exchange(Answered, (commands, values, [now - head.sent_at] * n, kinds))]
        else:
            out = self._answered_across(values, now, kinds)
            if out is None:
                return None
        if pending and type(pending[0]) is _Waiting:
            self._release_suppressed(now, out)
        return out

    def _answered_across(self, values: list, now: float, kinds: frozenset) -> list | None:
        """``_answered`` for replies whose commands are in several entries of the queue (runs,
        or parts of them, and plain tuples); None when one of them is not ordinary."""
        pending = self._pending
        need = len(values)
        commands: list = []
        latencies: list = []
        entries = 0
        for entry in pending:
            t = type(entry)
            if t is _Run:
                first = entry.first
                take = min(need, len(entry.commands) - first)
                commands += entry.commands[first:first + take]
                latencies += [now - entry.sent_at] * take
            elif t is _ORDINARY:
                take = 1
                commands.append(entry[0])
                latencies.append(now - entry[2])
            else:
                return None
            entries += 1
            need -= take
            if not need:
                break
        for _ in _repeat(None, entries - 1):
            entry = pending.popleft()
            if type(entry) is _Run:
                self._extra -= len(entry.commands) - entry.first - 1
        last = pending[0]
        if type(last) is _Run and last.first + take < len(last.commands):
            last.first += take
            self._extra -= take
        else:
            pending.popleft()
            if type(last) is _Run:
                self._extra -= take - 1
        return [Answered(commands, values, latencies, kinds)]

    def _spanned(self, data: bytes):
        """The values of ``data``, each one's stream span in ``_span`` while it is handled."""
        for value, start, end in self._s2c.feed_spans(data):
            self._span = (start, end)
            yield value

    def _reply(self, v, now, out) -> None:
        t = type(v)
        pending = self._pending
        head = self._head() if pending else None
        if t is not Push and t is not list and head is not None and not head.replies and not (
            self._monitor and t is Simple
        ):  # the common case: a reply to the oldest command
            self._done(head, v, now, out)
            return
        if t is Push:
            kind = v.items[0].lower() if v.items and type(v.items[0]) is bytes else b""
            if kind in _CONFIRMATIONS:
                if head is not None and _SUB_KINDS.get(head.name) == kind:
                    self._confirmation(head, v, kind, now, out)
                    return
                self._track(kind, v.items)
            out.append(ServerPush(v, now, _kind(v), self.protocol))
            return
        if t is Simple and self._monitor and (
                _MONITOR_LINE.match(v.value) or type(v.value) is Truncated):  # a long line, cut
            out.append(ServerPush(v, now, "monitor", self.protocol))
            return
        if t is list and v and self.protocol == 2 and type(v[0]) is bytes:
            kind = v[0]
            if kind in _MESSAGES and self._subscribed():
                out.append(ServerPush(v, now, kind.decode(), self.protocol))
                return
            if kind in _CONFIRMATIONS:
                if head is not None and _SUB_KINDS.get(head.name) == kind:
                    self._confirmation(head, v, kind, now, out)
                    return
                if self._subscribed():
                    self._track(kind, v)
                    out.append(ServerPush(v, now, kind.decode(), self.protocol))
                    return
        if head is None:
            out.append(ServerPush(v, now, "unsolicited", self.protocol))
            return
        if head.replies:
            # a (un)subscribe got fewer confirmations than counted: close it, go on
            self._done(head, head.replies, now, out)
            self._reply(v, now, out)
            return
        self._done(head, v, now, out)

    def _head(self):
        """The oldest command waiting, as a :class:`_Waiting` (a plain tuple is turned into one
        when something other than its ordinary reply comes)."""
        head = self._pending[0]
        if type(head) is _Run:
            self._explode()
            head = self._pending[0]
        if type(head) is _ORDINARY:
            args, name, sent_at, start, end = head
            head = self._pending[0] = _Waiting(args, name, sent_at, 1, False, start, end)
        return head

    def _explode(self) -> None:
        """The ``_Run`` at the head of the queue as one plain tuple per command."""
        pending = self._pending
        run = pending.popleft()
        tuples = run.tuples()
        self._extra -= len(tuples) - 1
        pending.extendleft(reversed(tuples))

    def _subscribed(self) -> bool:
        s = self._subs
        return bool(s[b"subscribe"] or s[b"psubscribe"] or s[b"ssubscribe"])

    def _track(self, kind: bytes, items) -> None:
        if len(items) < 2:
            return
        target = items[1]
        undone = _UNSUBSCRIBED.get(kind)
        count = items[2] if len(items) > 2 and type(items[2]) is int else None
        shard = kind in _SHARD_KINDS
        if type(target) is Truncated:
            self._track_cut(kind, undone, target, count, shard)
        elif undone is not None:
            self._subs[undone].discard(target)
        else:
            self._subs[kind].add(target)
        if count is not None:
            self._sub_count[shard] = count

    def _track_cut(self, kind, undone, target, count, shard) -> None:
        """A name the parser cut: names that differ past the kept bytes compare equal, so
        each subscription is its own entry, and a subscribe is new when the server's count
        grew (a repeated one is confirmed with the same count)."""
        if undone is not None:
            subs = self._subs[undone]
            for key in subs:
                if type(key) is tuple and key[0] == target:
                    subs.discard(key)
                    return
        elif count is None or count > self._sub_count[shard]:
            self._subs[kind].add((target, next(self._serial)))

    def _confirmation(self, head, v, kind, now, out) -> None:
        if head.expected is None:
            undone = _UNSUBSCRIBED.get(kind)
            current = self._subs[undone] if undone is not None else ()
            head.expected = max(1, len(current))
        self._track(kind, v.items if type(v) is Push else v)
        if head.replies is None:
            head.replies = [v]
        else:
            head.replies.append(v)
        if len(head.replies) >= head.expected:
            self._done(head, head.replies if head.expected > 1 else v, now, out)

    def _done(self, head, reply, now, out) -> None:
        pending = self._pending
        pending.popleft()
        name = head.name
        if self._config_gets and name in _SECRET_NAMES and _answer_secret(head.args):
            self._config_gets -= 1
            if self._span is not None:
                out.extend(SecretRange(S2C, s, e)
                           for s, e in reply_secret_ranges(head.args, reply, *self._span))
        elif name == b"EXEC" and self._config_gets and self._span is not None and (
                not head.in_tx and self._tx_queue):
            out.extend(SecretRange(S2C, s, e) for s, e in exec_secret_ranges(
                self._tx_queue, reply, *self._span, self.protocol))
        queued = ()
        if head.in_tx or name in _DONE_SPECIAL:
            if name == b"EXEC" and not head.in_tx:
                queued = tuple(self._tx_queue)  # the commands EXEC's reply answers
            self._done_special(head, reply)  # HELLO and RESET: the exchange has the new protocol
        sent_at = head.sent_at
        out.append(_exchange(Exchange, (head.args, name, sent_at, head.start, head.end, reply, now,
                                        now - sent_at, self.protocol, head.in_tx, queued, False)))
        self._release_suppressed(now, out)

    def _release_suppressed(self, now, out) -> None:
        """The commands next in line whose replies CLIENT REPLY suppressed: out now, in order."""
        pending = self._pending
        while pending and type(pending[0]) is _Waiting and pending[0].expected == 0:
            self._suppressed(pending.popleft(), now, out)

    def _done_special(self, head, reply) -> None:
        name = head.name
        t = type(reply)
        if head.in_tx:
            if reply == _QUEUED:
                self._tx_queue.append(head.args)
                if name in _SECRET_NAMES and _answer_secret(head.args):
                    self._config_gets += 1  # its answer comes inside EXEC's
        elif name == b"EXEC" or name == b"DISCARD":
            self._tx_done()
        elif name == b"MULTI":
            if t is Error and b"nested" not in reply.value:
                self._not_in_tx()
        elif name == b"HELLO":
            if t is Map:
                self.protocol = 3
            elif t is list:
                self.protocol = 2
        elif name == b"MONITOR":
            if reply == _OK:
                self._monitor = True
        elif name == b"RESET":
            if reply == _RESET:
                self.protocol = 2
                self._monitor = False
                self._tx_done()
                for s in self._subs.values():
                    s.clear()
                self._sub_count = {False: 0, True: 0}

    def _tx_done(self) -> None:
        """The transaction ran or was dropped: no answer inside EXEC's is awaited any more."""
        n = sum(1 for a in self._tx_queue if a and secret_name(a[0]) and _answer_secret(a))
        self._config_gets = max(0, self._config_gets - n)
        self._tx_queue = []

    def _suppressed(self, p, now, out) -> None:
        if self._config_gets and p.name in _SECRET_NAMES and _answer_secret(p.args):
            self._config_gets -= 1
        out.append(_exchange(Exchange, (p.args, p.name, p.sent_at, p.start, p.end, None, None,
                                        None, self.protocol, p.in_tx, (), True)))

    def _not_in_tx(self) -> None:
        """MULTI failed (not nested): the commands sent after it were not queued."""
        for p in self._pending:
            if type(p) is not _Waiting:
                continue  # ordinary, sent before MULTI: never in the transaction
            if p.name in (b"EXEC", b"DISCARD"):
                break
            p.in_tx = False
        else:
            self._in_tx = False

    def _flush_unanswered(self, now, reason, out, limit=None) -> None:
        pending = self._pending
        while pending and (limit is None or len(out) < limit):
            if type(pending[0]) is _Run:
                self._explode()
            p = pending.popleft()
            if type(p) is _ORDINARY:
                out.append(Unanswered(p[0], p[2], now, reason, False, self.protocol))
            elif p.expected == 0:
                self._suppressed(p, now, out)
            elif p.replies:
                self._done_partial(p, now, out)
            else:
                out.append(Unanswered(p.args, p.sent_at, now, reason, p.in_tx, self.protocol))
        self._config_gets = 0

    def _done_partial(self, p, now, out) -> None:
        self._pending.appendleft(p)
        self._done(p, p.replies, now, out)

    def _stop(self, now, out) -> None:
        self._stopped = True
        reason = "more than %d commands awaiting replies: pairing stopped" % self.max_pending
        out.append(Undecodable(C2S, now, reason, self._c2s.offset))
        out.append(Undecodable(S2C, now, reason, self._s2c.offset))
        self._pending.clear()
        self._extra = 0
        self._config_gets = 0


# -- the chain's RESP decoder ------------------------------------------------------------------


class RespStream:
    """The decoder chain's RESP decoder for one pair: a ``RespConversation`` whose events become
    records (``--only``/``--skip`` applied, secrets redacted; the exchanges one pipelined read
    answers as one ``RedisExchanges`` record when every sink takes them), its eof and close
    backlogs handed on in slices, its secrets' stream ranges sent to the pcap. ``st`` is the
    chain's per-pair state (``playground.decode.chain.PairState``)."""

    protocol = RESP

    def __init__(self, st):
        self.st = st
        chain = st.chain
        self._unfiltered = chain.only is None and chain.skip is None
        # long strings are streamed: the decoder keeps what the view shows (resp.Truncated);
        # the replies one read gives ordinary commands come matched in bulk (Answered) when
        # they become one record as they are
        conv = self.conv = RespConversation(max_bulk=chain.max_frame, max_value=chain.max_value,
                                            runs=chain.runs and self._unfiltered)
        self._feed = conv.feed
        # settled(direction): the chain's hold-back asks on every read; the conversation's
        # own method answers, without a call of ours around it
        self.settled = conv.settled
        # the commands whose records redaction may change (none when it is off)
        self._redactable = _REDACTABLE if chain.redact else frozenset()
        self._runs = chain.runs
        self._chain = chain  # chain.emit changes while records are held: look it up per call
        self._pid, self._client = st.id, st.client

    def feed(self, direction, data, now, offset):
        events = self._feed(direction, data, now)
        if events:
            e = events[0]
            if len(events) == 1 and type(e) is Answered:
                # pipelined commands answered by this read, matched in bulk: one record
                self._chain.emit(R.RedisExchanges(self._pid, now, self._client, e.commands,
                                                  e.replies, e.latencies, e.reply_types))
                return
            if len(events) == 1 and type(e) is Exchange and self._unfiltered and (
                    e.name not in self._redactable):
                # request/response traffic: one command answered by this read
                self._chain.emit(R.RedisExchange(self._pid, now, self._client, e.command,
                                                 e.reply, e.latency, False))
                return
            self._events(events, now, direction, data, offset)

    def eof(self, direction, now):
        self._in_steps(lambda limit: self.conv.eof(direction, now, limit), now)

    def close(self, now):
        self._in_steps(lambda limit: self.conv.close(now, limit), now)

    def _in_steps(self, events_upto, now):
        """``events_upto(limit)``: the conversation's eof/close events, at most ``limit`` a
        call. A few unanswered commands are handed on now; tens of thousands one slice per step
        of held work (``Chain.work``), the records after them (the pair's close) queued
        behind."""
        chain = self._chain
        limit = chain.SLICE
        events = events_upto(limit)
        self._events(events, now)
        if len(events) < limit or not self.conv.pending:
            return
        st = self.st

        def step() -> bool:
            got = []

            def one():
                got.extend(events_upto(limit))
                self._events(got, now)

            return chain.guarded(st, None, now, one) and len(got) >= limit and (
                self.conv.pending > 0)

        chain.hold(step)

    def _command(self, args):
        """(args for display, redacted?)"""
        chain = self.st.chain
        if not chain.redact or not args:
            return args, False
        first = args[0]
        if not (secret_name(first) if type(first) is bytes else refused(args)):
            return args, False
        out = redact_command(args)
        return out, out != tuple(args)

    def _events(self, events, now, fed=None, data=b"", offset=0):
        st = self.st
        chain = st.chain
        hides = None if self._unfiltered else chain.hides
        pid, client = st.id, st.client
        exchange = R.RedisExchange
        redactable = self._redactable
        if hides is None and len(events) > 1 and set(map(type, events)) == _EXCHANGES_ONLY and (
                redactable.isdisjoint(map(_NAME, events))):
            # pipelined commands answered by one read, shown as they came
            n = len(events)
            commands, replies = map(_COMMAND, events), map(_REPLY, events)
            latencies = map(_LATENCY, events)
            if self._runs:  # one record for them all
                chain.emit(R.RedisExchanges(pid, now, client, list(commands), list(replies),
                                            list(latencies)))
            else:
                chain.emit_many(list(map(exchange, _repeat(pid, n), _repeat(now, n),
                                         _repeat(client, n), commands, replies, latencies,
                                         _repeat(False, n))))
            return
        records = []  # handed over at once, in order
        emit = records.append
        for e in events:
            t = type(e)
            if t is Exchange:
                name = e.name
                if hides is not None and hides(name):
                    continue
                if name not in redactable:
                    emit(exchange(pid, now, client, e.command, e.reply, e.latency, False))
                elif name == b"EXEC":
                    if e.queued:
                        emit(exchange(pid, now, client, e.command,
                                      redact_exec(e.queued, e.reply), e.latency, False))
                    else:
                        emit(exchange(pid, now, client, e.command, e.reply, e.latency, False))
                else:
                    shown, redacted = self._command(e.command)
                    emit(exchange(pid, now, client, shown, redact_reply(e.command, e.reply),
                                  e.latency, redacted))
            elif t is Answered:  # only when unfiltered, and every sink takes runs
                emit(R.RedisExchanges(pid, now, client, e.commands, e.replies, e.latencies,
                                      e.reply_types))
            elif t is ServerPush:
                if chain.shows_pushes:
                    emit(R.RedisPush(pid, now, e.value))
            elif t is Unanswered:
                args = e.command
                first = args[0] if args else b""
                if hides is None or not hides(first.upper() if type(first) is bytes else b""):
                    shown, redacted = self._command(args)
                    emit(R.RedisUnanswered(pid, now, client, shown, redacted))
            elif t is Undecodable:
                direction, at = e.direction, e.offset
                emit(R.Undecodable(pid, now, direction, RESP, e.reason, at))
                st.fall_back(direction)
                if direction == fed and at is not None and at < offset + len(data):
                    # the rest of this chunk, from where decoding stopped, as hex
                    chain.emit_many(records)
                    records = []
                    emit = records.append
                    st.rescan(direction, data, now, offset, at)
            elif t is SecretRange:
                st.secret(e.direction, e.start, e.end)
        if records:
            chain.emit_many(records)


_COMMAND, _NAME, _REPLY, _LATENCY = (attrgetter("command"), attrgetter("name"),
                                     attrgetter("reply"), attrgetter("latency"))
_EXCHANGES_ONLY = {Exchange}
# The commands whose exchanges redaction may change: their arguments, their answer, the answers
# inside EXEC's; b"": one whose name is not a bulk string (``refused``).
_REDACTABLE = _SECRET_NAMES | {b"EXEC", b""}
