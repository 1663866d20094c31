"""Chat-line core: nicks, rooms and commands of the telnet/nc chat server, with no I/O at all.

The server state lives in :class:`ChatServer`. The adapter hands it connection ids, bytes and
timestamps (``connect``, ``feed``, ``eof``, ``close``, ``disconnect``) and gets back a list of
outputs to carry out in order: :class:`Send` (one text line to one connection), :class:`SendRaw`
(telnet negotiation bytes) and :class:`Close` (close that connection after what was sent).

Below the chat state sit the byte-level pieces, usable on their own: :class:`LineFramer`
(bounded lines ending in ``\\n`` or ``\\r\\n``, telnet ``IAC`` sequences taken out of the stream)
and :class:`TokenBucket` (the per-connection flood limit, clock passed in). The protocol itself is
documented in ``docs/chat-protocol.md``. This module imports no Twisted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

# --- outputs -------------------------------------------------------------------------------------


@attrs.frozen
class Send:
    """Send one line of text (without its line ending) to connection ``conn``."""

    conn: int
    line: str


@attrs.frozen
class SendRaw:
    """Send these bytes as they are (telnet option replies) to connection ``conn``."""

    conn: int
    data: bytes


@attrs.frozen
class Close:
    """Close connection ``conn`` once what was sent to it has been written."""

    conn: int
    reason: str


Output = Send | SendRaw | Close

# --- telnet --------------------------------------------------------------------------------------

IAC = 255
DONT = 254
DO = 253
WONT = 252
WILL = 251
SB = 250
GA = 249
EL = 248  # erase line
EC = 247  # erase character
AYT = 246  # are you there
AO = 245  # abort output
IP = 244  # interrupt process: what telnet sends for Ctrl-C
BRK = 243
DM = 242
NOP = 241
SE = 240

# --- framing events ------------------------------------------------------------------------------


@attrs.frozen
class Line:
    """A complete line: its bytes without the ``\\n`` / ``\\r\\n`` ending, telnet bytes removed."""

    data: bytes


@attrs.frozen
class LineTooLong:
    """A line grew past the limit; the framer accepts nothing more after this."""

    limit: int


@attrs.frozen
class TelnetCommand:
    """A two-byte telnet command such as ``IAC IP`` (Ctrl-C) or ``IAC AYT``."""

    command: int


@attrs.frozen
class TelnetOption:
    """An option negotiation request: ``verb`` is DO, DONT, WILL or WONT."""

    verb: int
    option: int


FrameEvent = Line | LineTooLong | TelnetCommand | TelnetOption

_DATA, _IAC, _OPTION, _SUB, _SUB_IAC = range(5)


def _cut_last_char(buf: bytearray) -> None:
    """Remove the last UTF-8 character (all its continuation bytes) from ``buf``."""
    while buf:
        byte = buf.pop()
        if byte & 0xC0 != 0x80:
            return


class LineFramer:
    """Splits a byte stream into lines of at most ``max_line`` bytes; strips telnet sequences.

    A line ends at ``\\n``; one ``\\r`` before it is dropped, so ``\\r\\n`` (telnet) and bare
    ``\\n`` (nc) both work. ``IAC IAC`` is a literal 0xFF byte; ``IAC WILL/WONT/DO/DONT x`` becomes
    a :class:`TelnetOption`; subnegotiations (``IAC SB ... IAC SE``) are skipped without being
    buffered; ``IAC EC`` / ``IAC EL`` edit the pending line (erase a character / the line); other
    two-byte commands become :class:`TelnetCommand`. The pending line never holds more than
    ``max_line + 1`` bytes; past that the framer emits :class:`LineTooLong` once and stops.
    Any split of the same bytes gives the same events.
    """

    def __init__(self, max_line: int = 1024):
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.max_line = max_line
        self._buf = bytearray()
        self._state = _DATA
        self._verb = 0
        self.dead = False

    @property
    def pending(self) -> int:
        """Bytes of the unfinished line held so far."""
        return len(self._buf)

    def _append(self, chunk: bytes, events: list) -> bool:
        self._buf += chunk
        if len(self._buf) > self.max_line + 1:  # +1: room for the "\r" of "\r\n"
            self._die(events)
            return False
        return True

    def _die(self, events: list) -> None:
        self.dead = True
        self._buf.clear()
        events.append(LineTooLong(self.max_line))

    def _end_line(self, events: list) -> bool:
        line = bytes(self._buf)
        self._buf.clear()
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_line:
            self._die(events)
            return False
        events.append(Line(line))
        return True

    def feed(self, data: bytes) -> list[FrameEvent]:
        events: list[FrameEvent] = []
        if self.dead:
            return events
        i, n = 0, len(data)
        # where the next "\n" and the next IAC are (-1: none left), searched for again only
        # once ``i`` has passed them: searching the rest of the chunk at every line and every
        # IAC made a chunk of IAC NOPs cost its size squared
        nl = data.find(b"\n")
        iac = data.find(b"\xff")
        while i < n:
            state = self._state
            if nl >= 0 and nl < i:
                nl = data.find(b"\n", i)
            if iac >= 0 and iac < i:
                iac = data.find(b"\xff", i)
            if state == _DATA:
                stop = min(p for p in (nl, iac, n) if p >= 0)
                if stop > i and not self._append(data[i:stop], events):
                    return events
                if stop == n:
                    break
                if stop == nl:
                    if not self._end_line(events):
                        return events
                else:
                    self._state = _IAC
                i = stop + 1
                continue
            if state == _SUB:  # skipped up to its next IAC, never buffered
                if iac < 0:
                    break
                self._state = _SUB_IAC
                i = iac + 1
                continue
            byte = data[i]
            i += 1
            if state == _IAC:
                self._state = _DATA
                if byte == IAC:
                    if not self._append(b"\xff", events):
                        return events
                elif byte in (WILL, WONT, DO, DONT):
                    self._verb = byte
                    self._state = _OPTION
                elif byte == SB:
                    self._state = _SUB
                elif byte == EC:
                    _cut_last_char(self._buf)
                elif byte == EL:
                    self._buf.clear()
                elif byte in (NOP, DM, GA, SE):
                    pass
                else:
                    events.append(TelnetCommand(byte))
            elif state == _OPTION:
                events.append(TelnetOption(self._verb, byte))
                self._state = _DATA
            else:  # _SUB_IAC: IAC SE ends the subnegotiation, IAC IAC is data inside it
                self._state = _DATA if byte == SE else _SUB
        return events

    def flush(self) -> list[FrameEvent]:
        """End of input: an unfinished line counts as a line."""
        events: list[FrameEvent] = []
        if not self.dead and self._buf:
            self._end_line(events)
        self._state = _DATA
        return events


def telnet_reply(option: TelnetOption) -> bytes:
    """Refuse every option (we do none): ``DO x`` -> ``WONT x``, ``WILL x`` -> ``DONT x``.

    ``DONT`` / ``WONT`` get no answer: we are already in that state, and answering them could
    start a negotiation loop (RFC 854).
    """
    if option.verb == DO:
        return bytes((IAC, WONT, option.option))
    if option.verb == WILL:
        return bytes((IAC, DONT, option.option))
    return b""


# --- flood limit ---------------------------------------------------------------------------------


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; each line takes one. ``rate <= 0`` = unlimited."""

    def __init__(self, rate: float, burst: float, now: float = 0.0):
        self.rate = rate
        self.burst = max(1.0, float(burst))
        self.tokens = self.burst
        self.last = now

    def _refill(self, now: float) -> None:
        elapsed = now - self.last
        if elapsed > 0:  # a clock that goes backwards refills nothing
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.last = max(self.last, now)

    def take(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def full(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        self._refill(now)
        return self.tokens >= self.burst


# --- text rules ----------------------------------------------------------------------------------

NICK_RULE = "1-20 characters from A-Z a-z 0-9 _ -"
ROOM_RULE = "1-20 characters from A-Z a-z 0-9 _ - after an optional #"
_NICK = re.compile(r"[A-Za-z0-9_-]{1,20}\Z")
_ROOM = re.compile(r"#?([A-Za-z0-9_-]{1,20})\Z")
# C0 and C1 controls, DEL, and the bidirectional overrides that can disguise text on a terminal.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def valid_nick(name: str) -> bool:
    return bool(_NICK.match(name))


def room_name(text: str) -> str | None:
    """``Lobby`` / ``#lobby`` -> ``#lobby``; None when the name breaks the rule."""
    m = _ROOM.match(text)
    return "#" + m.group(1).lower() if m else None


def clean_text(text: str) -> str:
    """Tabs become spaces; other control characters are removed; trailing blanks are dropped."""
    return _UNSAFE.sub("", text.replace("\t", " ")).rstrip()


HELP = (
    "commands (a line not starting with / is a message to your room; // sends a leading /):",
    "/nick NAME        choose or change your nick (" + NICK_RULE + ")",
    "/join ROOM        move to ROOM (created when first joined), e.g. /join #dev",
    "/leave            leave your room (also /part)",
    "/rooms            list rooms with their member counts",
    "/who [ROOM|*]     who is in your room, in ROOM, or everyone (*)",
    "/msg NICK TEXT    private message to NICK (also /tell)",
    "/me ACTION        an action in your room, shown as: * yournick ACTION",
    "/help             this list",
    "/quit [REASON]    leave the chat",
    "lines from the server: = info, ! error, <nick> message, * action, [from nick] / [to nick] private",
)

# --- the chat ------------------------------------------------------------------------------------


@attrs.define
class _Conn:
    id: int
    framer: LineFramer
    bucket: TokenBucket
    opened: float
    nick: str | None = None
    room: str | None = None
    strikes: int = 0
    closing: bool = False
    lines: int = 0


class ChatServer:
    """The whole chat: connections, nicks, rooms. Feed it bytes; carry out what it returns."""

    def __init__(
        self,
        max_line: int = 1024,
        flood_rate: float = 5.0,
        flood_burst: float = 20.0,
        flood_strikes: int = 5,
        default_room: str = "#lobby",
        name: str = "tcpplay-chat",
    ):
        self.max_line = max_line
        self.flood_rate = flood_rate
        self.flood_burst = flood_burst
        self.flood_strikes = max(1, flood_strikes)
        room = room_name(default_room)
        if room is None:
            raise ValueError(f"bad default room {default_room!r}: {ROOM_RULE}")
        self.default_room = room
        self.name = name
        self._conns: dict[int, _Conn] = {}
        self._nicks: dict[str, int] = {}  # lower-cased nick -> conn id
        self._rooms: dict[str, dict[int, None]] = {}  # room -> members, in joining order

    # -- queries --

    def nick(self, conn: int) -> str | None:
        c = self._conns.get(conn)
        return c.nick if c else None

    def room(self, conn: int) -> str | None:
        c = self._conns.get(conn)
        return c.room if c else None

    def rooms(self) -> dict[str, int]:
        return {room: len(members) for room, members in sorted(self._rooms.items())}

    def lines_received(self, conn: int) -> int:
        c = self._conns.get(conn)
        return c.lines if c else 0

    @property
    def connections(self) -> int:
        return len(self._conns)

    # -- inputs from the adapter --

    def connect(self, conn: int, now: float) -> list[Output]:
        if conn in self._conns:
            raise ValueError(f"connection {conn} already open")
        self._conns[conn] = _Conn(
            conn, LineFramer(self.max_line), TokenBucket(self.flood_rate, self.flood_burst, now), now
        )
        return [
            Send(
                conn,
                f"= hello {self.name}: choose a nick with /nick NAME; /help lists the commands",
            )
        ]

    def feed(self, conn: int, data: bytes, now: float) -> list[Output]:
        c = self._conns.get(conn)
        if c is None or c.closing:
            return []
        out: list[Output] = []
        for event in c.framer.feed(data):
            self._frame_event(c, event, now, out)
            if c.closing:
                break
        return out

    def eof(self, conn: int, now: float) -> list[Output]:
        """The client finished sending (half-close): an unfinished last line still counts."""
        c = self._conns.get(conn)
        if c is None or c.closing:
            return []
        out: list[Output] = []
        for event in c.framer.flush():
            self._frame_event(c, event, now, out)
            if c.closing:
                return out
        self._close(c, "end of input", out, bye="end of input, goodbye")
        return out

    def close(self, conn: int, code: str, text: str, reason: str, now: float) -> list[Output]:
        """Server-side close (idle timeout, shutdown): an error line, the room told, Close."""
        c = self._conns.get(conn)
        if c is None or c.closing:
            return []
        out: list[Output] = [Send(conn, f"! {code} {text}")]
        self._close(c, reason, out)
        return out

    def disconnect(self, conn: int, now: float, reason: str = "connection closed") -> list[Output]:
        """The connection is gone: forget it, telling its room if it had not left already."""
        c = self._conns.pop(conn, None)
        if c is None:
            return []
        out: list[Output] = []
        if not c.closing:
            self._leave_everything(c, reason, out)
        return out

    # -- internals --

    def _frame_event(self, c: _Conn, event: FrameEvent, now: float, out: list[Output]) -> None:
        if isinstance(event, Line):
            self._line(c, event.data, now, out)
        elif isinstance(event, LineTooLong):
            out.append(Send(c.id, f"! line-too-long lines are limited to {event.limit} bytes; closing"))
            self._close(c, "line too long", out)
        elif isinstance(event, TelnetOption):
            reply = telnet_reply(event)
            if reply:
                out.append(SendRaw(c.id, reply))
        elif isinstance(event, TelnetCommand):
            if event.command in (IP, BRK):
                self._close(c, "interrupted", out, bye="interrupted (Ctrl-C), goodbye")
            elif event.command == AYT:
                out.append(Send(c.id, "= ayt yes, still here"))
            # AO and the rest: nothing to do for a line-at-a-time chat

    def _line(self, c: _Conn, data: bytes, now: float, out: list[Output]) -> None:
        c.lines += 1
        if c.strikes and c.bucket.full(now):  # quiet long enough: past flooding is forgiven
            c.strikes = 0
        if not c.bucket.take(now):
            c.strikes += 1
            if c.strikes >= self.flood_strikes:
                out.append(Send(c.id, "! flood-close too many lines too fast; closing"))
                self._close(c, "flooding", out)
            else:
                out.append(
                    Send(
                        c.id,
                        f"! flood slow down: at most {self.flood_rate:g} lines/s "
                        f"(bursts of {self.flood_burst:g}); line dropped",
                    )
                )
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            out.append(Send(c.id, "! bad-utf8 line dropped: it is not valid UTF-8"))
            return
        text = clean_text(text)
        if not text.strip():
            return
        if text.startswith("/") and not text.startswith("//"):
            self._command(c, text, out)
        else:
            self._say(c, text[1:] if text.startswith("//") else text, out)

    def _command(self, c: _Conn, text: str, out: list[Output]) -> None:
        word, _, rest = text[1:].partition(" ")
        word = word.lower()
        rest = rest.strip()
        handler = _COMMANDS.get(word)
        if handler is None:
            out.append(Send(c.id, f"! unknown-command /{word} (try /help)"))
            return
        if c.nick is None and word not in _WITHOUT_NICK:
            out.append(Send(c.id, _NO_NICK))
            return
        handler(self, c, rest, out)

    def _to_room(self, room: str, line: str, out: list[Output]) -> None:
        for member in self._rooms.get(room, ()):
            out.append(Send(member, line))

    def _say(self, c: _Conn, text: str, out: list[Output]) -> None:
        if c.nick is None:
            out.append(Send(c.id, _NO_NICK))
        else:
            self._to_own_room(c, f"<{c.nick}> {text}", out)

    def _to_own_room(self, c: _Conn, line: str, out: list[Output]) -> None:
        """``line`` to everyone in ``c``'s room, or tell ``c`` it is in none."""
        if c.room is None:
            out.append(Send(c.id, "! no-room you are in no room: /join ROOM first"))
        else:
            self._to_room(c.room, line, out)

    def _join(self, c: _Conn, room: str, out: list[Output]) -> None:
        if c.room is not None:
            self._part(c, out)
        c.room = room
        self._rooms.setdefault(room, {})[c.id] = None
        self._to_room(room, f"= join {c.nick} {room}", out)
        out.append(Send(c.id, self._who_line(room)))

    def _part(self, c: _Conn, out: list[Output]) -> None:
        room = c.room
        if room is None:
            return
        self._to_room(room, f"= part {c.nick} {room}", out)
        self._drop_member(c)

    def _drop_member(self, c: _Conn) -> None:
        members = self._rooms.get(c.room)
        if members is not None:
            members.pop(c.id, None)
            if not members:
                del self._rooms[c.room]
        c.room = None

    def _who_line(self, room: str) -> str:
        names = [self._conns[m].nick for m in self._rooms.get(room, ())]
        return " ".join(["= who", room, *names])

    def _leave_everything(self, c: _Conn, reason: str, out: list[Output]) -> None:
        if c.room is not None:
            room = c.room
            self._drop_member(c)
            self._to_room(room, f"= quit {c.nick} {reason}", out)
        if c.nick is not None:
            self._nicks.pop(c.nick.lower(), None)

    def _close(self, c: _Conn, reason: str, out: list[Output], bye: str | None = None,
               close_reason: str | None = None) -> None:
        if bye is not None:
            out.append(Send(c.id, f"= bye {bye}"))
        self._leave_everything(c, reason, out)
        c.closing = True
        out.append(Close(c.id, close_reason or reason))

    # -- commands --

    def _cmd_nick(self, c: _Conn, arg: str, out: list[Output]) -> None:
        if not arg:
            out.append(Send(c.id, "! usage /nick NAME"))
            return
        if not valid_nick(arg):
            out.append(Send(c.id, f"! bad-nick a nick is {NICK_RULE}"))
            return
        owner = self._nicks.get(arg.lower())
        if owner is not None and owner != c.id:
            out.append(Send(c.id, f"! nick-taken {arg} is already in use; pick another"))
            return
        if c.nick == arg:
            out.append(Send(c.id, f"! same-nick you are already {arg}"))
            return
        old = c.nick
        if old is not None:
            del self._nicks[old.lower()]
        self._nicks[arg.lower()] = c.id
        c.nick = arg
        if old is None:
            out.append(Send(c.id, f"= welcome {arg}"))
            self._join(c, self.default_room, out)
        elif c.room is not None:
            self._to_room(c.room, f"= nick {old} {arg}", out)
        else:
            out.append(Send(c.id, f"= nick {old} {arg}"))

    def _cmd_join(self, c: _Conn, arg: str, out: list[Output]) -> None:
        if not arg:
            out.append(Send(c.id, "! usage /join ROOM"))
            return
        room = room_name(arg)
        if room is None:
            out.append(Send(c.id, f"! bad-room a room name is {ROOM_RULE}"))
        elif room == c.room:
            out.append(Send(c.id, f"! already-there you are already in {room}"))
        else:
            self._join(c, room, out)

    def _cmd_leave(self, c: _Conn, arg: str, out: list[Output]) -> None:
        if c.room is None:
            out.append(Send(c.id, "! no-room you are in no room"))
        else:
            self._part(c, out)
            out.append(Send(c.id, "= info you are in no room now; /join ROOM to talk"))

    def _cmd_rooms(self, c: _Conn, arg: str, out: list[Output]) -> None:
        out.append(Send(c.id, " ".join(["= rooms", *(f"{r}({n})" for r, n in self.rooms().items())])))

    def _cmd_who(self, c: _Conn, arg: str, out: list[Output]) -> None:
        if arg == "*":
            everyone = sorted(
                (x for x in self._conns.values() if x.nick and not x.closing),
                key=lambda x: x.nick.lower(),
            )
            names = [f"{x.nick}@{x.room}" if x.room else x.nick for x in everyone]
            out.append(Send(c.id, " ".join(["= who *", *names])))
            return
        if arg:
            room = room_name(arg)
            if room is None:
                out.append(Send(c.id, f"! bad-room a room name is {ROOM_RULE}"))
                return
        elif c.room is None:
            out.append(Send(c.id, "! no-room you are in no room: /who ROOM or /who *"))
            return
        else:
            room = c.room
        if room not in self._rooms:
            out.append(Send(c.id, f"! no-such-room nobody is in {room}"))
            return
        out.append(Send(c.id, self._who_line(room)))

    def _cmd_msg(self, c: _Conn, arg: str, out: list[Output]) -> None:
        target, _, text = arg.partition(" ")
        text = text.strip()
        if not target or not text:
            out.append(Send(c.id, "! usage /msg NICK TEXT"))
            return
        to = self._nicks.get(target.lower())
        if to is None:
            out.append(Send(c.id, f"! no-such-nick nobody is called {target}"))
            return
        out.append(Send(to, f"[from {c.nick}] {text}"))
        if to != c.id:
            out.append(Send(c.id, f"[to {self._conns[to].nick}] {text}"))

    def _cmd_me(self, c: _Conn, arg: str, out: list[Output]) -> None:
        if not arg:
            out.append(Send(c.id, "! usage /me ACTION"))
        else:
            self._to_own_room(c, f"* {c.nick} {arg}", out)

    def _cmd_help(self, c: _Conn, arg: str, out: list[Output]) -> None:
        out.extend(Send(c.id, f"= help {line}") for line in HELP)

    def _cmd_quit(self, c: _Conn, arg: str, out: list[Output]) -> None:
        self._close(c, arg or "quit", out, bye="goodbye",
                    close_reason=f"quit: {arg}" if arg else "quit")


_COMMANDS = {
    "nick": ChatServer._cmd_nick,
    "join": ChatServer._cmd_join,
    "leave": ChatServer._cmd_leave,
    "part": ChatServer._cmd_leave,
    "rooms": ChatServer._cmd_rooms,
    "who": ChatServer._cmd_who,
    "msg": ChatServer._cmd_msg,
    "tell": ChatServer._cmd_msg,
    "me": ChatServer._cmd_me,
    "help": ChatServer._cmd_help,
    "quit": ChatServer._cmd_quit,
}
_NO_NICK = "! no-nick choose a nick first: /nick NAME"
_WITHOUT_NICK = frozenset({"nick", "help", "quit", "rooms", "who"})


def lines_for(outputs: Iterable[Output], conn: int) -> list[str]:
    """The text lines ``outputs`` send to ``conn`` (handy in tests and tools)."""
    return [o.line for o in outputs if isinstance(o, Send) and o.conn == conn]
