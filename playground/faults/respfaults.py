"""RESP-aware faults of one connection as a sans-I/O core: both directions' bytes in, actions out.

``RespFaults`` frames the client's commands (RESP arrays and inline commands, with
``playground.codec``'s parser) and the server's replies, and applies the ``resp`` toxics that
match a command (``command`` glob on the upper-cased name, ``key`` glob on the first argument,
``nth``: only the Nth match, 0 = every match; toxicity rolled once per connection):

- ``error``: the command is not forwarded; the error reply (``attributes["error"]``, a leading
  ``-`` added when missing, CRLF added) is given to the client at the command's place in the
  reply order, after the replies of every earlier command (pipelines keep their order).
- ``delay``: the command's reply is held ``delay`` ms after it arrives; later replies wait
  behind it (order kept).
- ``drop``: the command is forwarded, its reply swallowed (the client times out).
- ``close`` / ``reset``: at the matching command the pair is closed (FIN) or reset, before the
  command is forwarded.

What does not break: RESP3 pushes (``>``) are not replies: they pass at once and fill no slot.
``HELLO`` is a command like any other (its reply is one map). Between ``MULTI`` and
``EXEC``/``DISCARD`` (both included) ``error`` faults pass: a command the server never saw
would leave it queued or in MULTI state; ``delay``, ``drop``, ``close`` and ``reset`` still act.
After ``SUBSCRIBE``, ``PSUBSCRIBE``, ``SSUBSCRIBE``, ``MONITOR`` or ``CLIENT REPLY`` (replies no
longer one per command) faults stop for the connection: what is held goes out in order, then
bytes pass unchanged. The same on garbage either way, on an HTTP request line (a ``resp`` fault
given to a proxy of HTTP traffic, as ``demo --fault`` does) or when more than ``max_held`` bytes
would be held: the core gives up, says so once (a ``Note``), and passes bytes through.

Actions: ``ToServer(data)``, ``ToClient(data, injected, affected)`` (``injected`` is the toxic
whose error reply this is, ``affected`` the one that delayed these bytes, else None), ``FinToServer()`` / ``FinToClient()`` (pass a FIN on, after every
byte before it), ``Wait(at)`` (call ``tick``), ``Close(toxic)`` / ``Abort(toxic)`` (from
``playground.faults.toxics``) and ``Note(toxic, text)`` (a line for the log). Pure: no Twisted,
no clock.
"""

from __future__ import annotations

import random
from collections import deque

import attrs

from playground.codec.parser import RespParser
from playground.codec.values import Inline, ProtocolError, Push
from playground.decode.respdecoder import redact_command
from playground.faults.model import ConnectionToxics, Toxic
from playground.faults.toxics import Abort, Close, Wait

__all__ = ["MAX_HELD", "FinToClient", "FinToServer", "Note", "RespFaults", "ToClient", "ToServer"]

MAX_HELD = 8 * 1024 * 1024
# commands after which replies are no longer one per command
_MODE_CHANGERS = (b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE", b"MONITOR")


@attrs.frozen
class ToServer:
    data: bytes


@attrs.frozen
class ToClient:
    data: bytes
    injected: Toxic | None = None
    affected: Toxic | None = None  # the toxic that held these bytes back (a delay)


@attrs.frozen
class FinToServer:
    """Pass the client's FIN on to the server."""


@attrs.frozen
class FinToClient:
    """Pass the server's FIN on to the client (every reply before it was written)."""


@attrs.frozen
class Note:
    """Something for the log: ``toxic`` acted (or None: the core gave up), as ``text`` says."""

    toxic: Toxic | None
    text: str


class _Slot:
    """One reply the client waits for, in order: a forwarded command's or an injected one."""

    __slots__ = ("data", "drop", "delay", "until", "done", "toxic", "affected")

    def __init__(self, data: bytes | None = None, drop: bool = False, delay: float = 0.0,
                 toxic: Toxic | None = None):
        self.data = data  # the reply bytes (injected: known at once; forwarded: when read)
        self.done = data is not None
        self.drop = drop
        self.delay = delay  # seconds held once the reply is there
        self.until = 0.0
        self.toxic = toxic  # set on an injected reply: the toxic that injected it
        self.affected: Toxic | None = None  # set on a delayed reply: the toxic delaying it


def describe(args) -> str:
    """A command for a log line: its name and first key, escaped, short; a password
    (``AUTH pw``) as ``(redacted)``: the log is no place for it, whatever ``--no-redact`` says
    of the traffic's sinks."""
    words = [a.decode("latin-1") for a in redact_command(args[:3])[:2]]
    text = " ".join(words).encode("unicode_escape").decode("ascii")
    return text if len(text) <= 80 else text[:77] + "..."


def error_reply(text: str) -> bytes:
    """The injected error as sent: a leading ``-`` when missing, one line, CRLF."""
    line = text.replace("\r", " ").replace("\n", " ")
    if not line.startswith("-"):
        line = "-" + line
    return line.encode("utf-8") + b"\r\n"


class RespFaults(ConnectionToxics):
    """The ``resp`` toxics of one connection. ``passing`` once it has stopped acting."""

    protocol = "resp"

    def __init__(self, rng: random.Random, max_held: int = MAX_HELD):
        super().__init__(rng)
        self.max_held = max_held
        self.passing = False
        self._commands = RespParser(inline=True, use_hiredis=False, redis_requests=True)
        self._replies = RespParser(use_hiredis=False)
        self._cbuf = bytearray()  # client bytes of the unfinished command
        self._cbase = 0  # stream offset of _cbuf[0]
        self._sbuf = bytearray()  # server bytes of the unfinished reply
        self._sbase = 0
        self._slots: deque[_Slot] = deque()  # every reply the client is owed, in order
        self._awaiting: deque[_Slot] = deque()  # the forwarded ones whose reply is not read yet
        self._held = 0  # bytes of the replies in _slots
        self._in_multi = False
        self._server_eof = False
        self._fin_sent = False

    def held(self) -> int:
        return len(self._cbuf) + len(self._sbuf) + self._held

    # -- client -> server ----------------------------------------------------------
    def client_data(self, data: bytes, now: float) -> list:
        if self.passing:
            return [ToServer(data)]
        out: list = []
        self._cbuf += data
        forward: list[bytes] = []
        done_to = self._cbase  # stream offset up to which the client's bytes are handled
        for value, _start, end in self._commands.feed_spans(data):
            if type(value) is ProtocolError:
                return self._give_up(out, forward, done_to, "the client sent what is not RESP",
                                     now)
            # from the end of the last command: empty inline lines belong to no frame
            raw = bytes(self._cbuf[done_to - self._cbase:end - self._cbase])
            args = value.args if type(value) is Inline else value
            if not isinstance(args, (list, tuple)) or not all(type(a) is bytes for a in args):
                return self._give_up(out, forward, done_to,
                                     "the client sent what is not a command", now)
            if type(value) is Inline and args and args[-1].startswith(b"HTTP/"):
                return self._give_up(out, forward, done_to, "the client speaks HTTP", now)
            done_to = end
            if self.passing:  # a mode changer earlier in this feed
                forward.append(raw)
            elif self._command(args, raw, forward, out, now):
                return out  # the pair is closed
        if self.passing:  # an unfinished command after a mode changer goes as it is
            forward.append(bytes(self._cbuf[done_to - self._cbase:]))
            self._cbuf.clear()
        else:
            start = self._commands.frame_start
            if start > done_to:  # skipped empty lines after the last command
                forward.append(bytes(self._cbuf[done_to - self._cbase:start - self._cbase]))
            del self._cbuf[:start - self._cbase]
            self._cbase = start
        if forward:
            out.insert(0, ToServer(b"".join(forward)))
        if self.held() > self.max_held:
            return self._give_up(out, [], self._cbase, "more than max_held bytes held", now)
        out.extend(self._release(now))
        return out

    def _command(self, args, raw: bytes, forward: list, out: list, now: float) -> bool:
        """One whole command: decide, forward or not; True if the pair is closed by it."""
        if not args:  # an empty request: Redis answers nothing
            forward.append(raw)
            return False
        name = args[0].upper()
        toxic = self._match(name, args)
        exempt = self._in_multi or name in (b"EXEC", b"DISCARD")
        action = toxic.attributes["action"] if toxic is not None else None
        if action in ("close", "reset"):
            if forward:
                out.append(ToServer(b"".join(forward)))
                forward.clear()
            out.extend(self._release(now))
            verb = "closes" if action == "close" else "resets"
            out.append(Note(toxic, f"{verb} the pair at {describe(args)}"))
            out.append((Close if action == "close" else Abort)(toxic))
            self.passing = True
            return True
        if action == "error" and not exempt:
            reply = error_reply(str(toxic.attributes["error"]))
            self._slots.append(_Slot(reply, toxic=toxic))
            self._held += len(reply)
            out.append(Note(toxic, f"injected {reply[:-2].decode('utf-8', 'replace')} for "
                                   f"{describe(args)}"))
            return False
        forward.append(raw)
        if action == "drop":
            self._slots.append(_Slot(drop=True))
            out.append(Note(toxic, f"drops the reply of {describe(args)}"))
        elif action == "delay":
            delay = toxic.attributes["delay"]
            self._slots.append(_Slot(delay=delay / 1000))
            self._slots[-1].affected = toxic
            out.append(Note(toxic, f"delays the reply of {describe(args)} by {delay} ms"))
        else:
            self._slots.append(_Slot())
        self._awaiting.append(self._slots[-1])
        if name == b"MULTI":
            self._in_multi = True
        elif name in (b"EXEC", b"DISCARD"):
            self._in_multi = False
        elif name in _MODE_CHANGERS or name == b"CLIENT" and len(args) > 1 and (
                args[1].upper() == b"REPLY"):
            self._slots[-1].drop = False
            self.passing = True  # its reply and later ones pass once the queue is out
        return False

    def _match(self, name: bytes, args) -> Toxic | None:
        if not self.toxics:
            return None
        name_text = name.decode("latin-1")
        key_text = args[1].decode("latin-1") if len(args) > 1 else None
        for toxic in self.toxics:
            command, key = toxic.globs["command"], toxic.globs["key"]  # None: "*"
            if command is not None and command(name_text) is None:
                continue
            if key is not None and (key_text is None or key(key_text) is None):
                continue
            if self._counts(toxic):
                return toxic
        return None

    def client_eof(self, now: float) -> list:
        """The client's FIN: an unfinished command goes out as it is, then the FIN."""
        out: list = []
        if self._cbuf:
            out.append(ToServer(bytes(self._cbuf)))
            self._cbuf.clear()
        self.passing = True
        out.append(FinToServer())
        out.extend(self._release(now))
        return out

    # -- server -> client ----------------------------------------------------------
    def server_data(self, data: bytes, now: float) -> list:
        if self.passing and not self._slots and not self._sbuf:
            return [ToClient(data)]
        out: list = []
        self._sbuf += data
        taken = self._sbase  # stream offset up to which replies are taken
        for value, start, end in self._replies.feed_spans(data):
            if type(value) is ProtocolError:
                del self._sbuf[:taken - self._sbase]
                self._sbase = taken
                return self._give_up(out, [], self._cbase, "the server sent what is not RESP",
                                     now)
            raw = bytes(self._sbuf[start - self._sbase:end - self._sbase])
            if type(value) is Push:  # not a reply: out at once, after the replies not held
                out.extend(self._release(now))
                out.append(ToClient(raw))
            elif not self._awaiting:  # a reply nobody waits for: in its place
                self._slots.append(_Slot(raw))
                self._held += len(raw)
            else:
                slot = self._awaiting.popleft()
                self._held += len(raw)
                slot.data = raw
                slot.done = True
                slot.until = now + slot.delay
            taken = end
        used = self._replies.frame_start - self._sbase
        if used > 0:
            del self._sbuf[:used]
            self._sbase += used
        if self.held() > self.max_held:
            return self._give_up(out, [], self._cbase, "more than max_held bytes held", now)
        out.extend(self._release(now))
        return out

    def server_eof(self, now: float) -> list:
        """The server's FIN: it reaches the client after every held reply (the replies still
        awaited will not come)."""
        self._server_eof = True
        self._no_more_replies()
        return self._release(now)

    def tick(self, now: float) -> list:
        return self._release(now)

    def forget(self, name: str, now: float) -> list:
        """Toxic ``name`` was removed: the replies it delays are due now (those it drops stay
        dropped: the client has given up on them)."""
        for slot in self._slots:
            if slot.affected is not None and slot.affected.name == name:
                slot.delay = slot.until = 0.0
                slot.affected = None
        return self._release(now)

    def _release(self, now: float) -> list:
        out: list = []
        slots = self._slots
        pending: list[bytes] = []
        while slots:
            slot = slots[0]
            if not slot.done:
                break
            if slot.until > now:
                if pending:
                    out.append(ToClient(b"".join(pending)))
                out.append(Wait(slot.until))
                return out
            slots.popleft()
            self._held -= len(slot.data)
            toxic = slot.toxic
            if toxic is not None:
                if pending:
                    out.append(ToClient(b"".join(pending)))
                    pending = []
                out.append(ToClient(slot.data, toxic))
            elif slot.affected is not None and slot.data:
                if pending:
                    out.append(ToClient(b"".join(pending)))
                    pending = []
                out.append(ToClient(slot.data, affected=slot.affected))
            elif not slot.drop:
                pending.append(slot.data)
        if self.passing and not slots and self._sbuf:
            pending.append(bytes(self._sbuf))  # an unfinished reply after faults stopped
            self._sbuf.clear()
        if pending:
            out.append(ToClient(b"".join(pending)))
        if self._server_eof and not slots and not self._fin_sent:
            if self._sbuf:
                out.append(ToClient(bytes(self._sbuf)))
                self._sbuf.clear()
            self._fin_sent = True
            out.append(FinToClient())
        return out

    def _give_up(self, out: list, forward: list, done_to: int, why: str, now: float) -> list:
        """Stop acting: what the client sent from stream offset ``done_to`` on goes to the
        server, what is held to the client in order (delays and drops cancelled), then bytes
        pass unchanged."""
        first = not self.passing
        self.passing = True
        rest = bytes(self._cbuf[done_to - self._cbase:])
        self._cbuf.clear()
        if rest:
            forward.append(rest)
        if forward:
            out.append(ToServer(b"".join(forward)))
        for slot in self._slots:
            slot.until = 0.0
            slot.drop = False
        self._no_more_replies()  # the replies still to come are in the bytes passed unchanged
        if first:
            out.append(Note(None, f"RESP faults stop on this pair: {why}; bytes pass unchanged"))
        out.extend(self._release(now))
        return out

    def _no_more_replies(self) -> None:
        """The replies still awaited will not be read as replies: their slots are empty."""
        for slot in self._awaiting:
            slot.data = b""
            slot.done = True
        self._awaiting.clear()
