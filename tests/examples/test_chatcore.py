"""The chat core without any I/O: commands, errors, rooms, framing, telnet bytes, flood limit."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import playground.examples.chat.core as chatcore
from playground.examples.chat.core import (
    AYT,
    DO,
    DONT,
    EC,
    EL,
    IAC,
    IP,
    NOP,
    SB,
    SE,
    WILL,
    WONT,
    ChatServer,
    Close,
    Line,
    LineFramer,
    LineTooLong,
    Send,
    SendRaw,
    TelnetCommand,
    TelnetOption,
    TokenBucket,
    clean_text,
    lines_for,
    room_name,
    valid_nick,
)

pytestmark = pytest.mark.pure

HELLO = "= hello tcpplay-chat: choose a nick with /nick NAME; /help lists the commands"


class Chat:
    """A ChatServer with helpers: connect users, send lines, read what each one got."""

    def __init__(self, **kw):
        kw.setdefault("flood_rate", 0)  # most tests are not about flooding
        self.server = ChatServer(**kw)
        self.now = 0.0
        self.next_id = 1

    def connect(self) -> int:
        conn = self.next_id
        self.next_id += 1
        assert self.server.connect(conn, self.now) == [Send(conn, HELLO)]
        return conn

    def user(self, nick: str) -> int:
        conn = self.connect()
        self.send(conn, f"/nick {nick}")
        return conn

    def send(self, conn: int, line: str | bytes) -> list:
        data = line if isinstance(line, bytes) else line.encode() + b"\n"
        return self.server.feed(conn, data, self.now)


def test_pure_core_imports_no_twisted():
    tree = ast.parse(Path(chatcore.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert names and not [m for m in names if m.split(".")[0] == "twisted"]


# --- nicks ---------------------------------------------------------------------------------------


def test_first_nick_welcomes_and_joins_the_default_room():
    chat = Chat()
    a = chat.connect()
    assert chat.send(a, "/nick alice") == [
        Send(a, "= welcome alice"),
        Send(a, "= join alice #lobby"),
        Send(a, "= who #lobby alice"),
    ]
    assert chat.server.nick(a) == "alice" and chat.server.room(a) == "#lobby"


def test_join_is_announced_to_the_room_and_who_lists_members_in_order():
    chat = Chat()
    a = chat.user("alice")
    b = chat.connect()
    out = chat.send(b, "/nick bob")
    assert lines_for(out, a) == ["= join bob #lobby"]
    assert lines_for(out, b) == ["= welcome bob", "= join bob #lobby", "= who #lobby alice bob"]


@pytest.mark.parametrize("nick", ["a", "Z", "bob_2", "x-y", "A" * 20, "0123456789"])
def test_valid_nicks(nick):
    assert valid_nick(nick)


@pytest.mark.parametrize("nick", ["", "a" * 21, "a b", "a!", "é", "a.b", "#room", "a\n", "ａ"])
def test_invalid_nicks(nick):
    assert not valid_nick(nick)


def test_bad_nick_is_an_error_and_changes_nothing():
    chat = Chat()
    a = chat.connect()
    assert lines_for(chat.send(a, "/nick bad!nick"), a) == [
        "! bad-nick a nick is 1-20 characters from A-Z a-z 0-9 _ -"
    ]
    assert lines_for(chat.send(a, "/nick " + "x" * 21), a)[0].startswith("! bad-nick ")
    assert lines_for(chat.send(a, "/nick"), a) == ["! usage /nick NAME"]
    assert chat.server.nick(a) is None


def test_nick_is_unique_case_insensitively():
    chat = Chat()
    chat.user("Alice")
    b = chat.connect()
    assert lines_for(chat.send(b, "/nick aLICE"), b) == [
        "! nick-taken aLICE is already in use; pick another"
    ]
    assert chat.server.nick(b) is None


def test_nick_change_is_announced_and_frees_the_old_nick():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    out = chat.send(a, "/nick Alicia")
    assert lines_for(out, a) == lines_for(out, b) == ["= nick alice Alicia"]
    c = chat.connect()
    assert lines_for(chat.send(c, "/nick alice"), c)[0] == "= welcome alice"


def test_own_nick_in_other_case_is_allowed_same_nick_is_an_error():
    chat = Chat()
    a = chat.user("alice")
    assert lines_for(chat.send(a, "/nick alice"), a) == ["! same-nick you are already alice"]
    assert lines_for(chat.send(a, "/nick ALICE"), a) == ["= nick alice ALICE"]


def test_nick_change_outside_a_room_is_told_to_self_only():
    chat = Chat()
    a = chat.user("alice")
    chat.send(a, "/leave")
    assert chat.send(a, "/nick al") == [Send(a, "= nick alice al")]


def test_commands_that_need_a_nick_say_so():
    chat = Chat()
    a = chat.connect()
    for line in ("hello", "/join dev", "/me waves", "/msg x hi", "/leave"):
        assert chat.send(a, line) == [Send(a, "! no-nick choose a nick first: /nick NAME")], line


def test_commands_allowed_without_a_nick():
    chat = Chat()
    chat.user("alice")
    a = chat.connect()
    assert chat.send(a, "/rooms") == [Send(a, "= rooms #lobby(1)")]
    assert chat.send(a, "/who *") == [Send(a, "= who * alice@#lobby")]
    assert chat.send(a, "/who #lobby") == [Send(a, "= who #lobby alice")]
    assert lines_for(chat.send(a, "/help"), a)[0].startswith("= help ")
    assert chat.send(a, "/quit") == [Send(a, "= bye goodbye"), Close(a, "quit")]


# --- rooms ---------------------------------------------------------------------------------------


def test_room_names():
    assert room_name("dev") == room_name("#DEV") == "#dev"
    assert room_name("a_b-1") == "#a_b-1"
    for bad in ("", "#", "##dev", "a b", "x" * 21, "dév"):
        assert room_name(bad) is None, bad


def test_join_moves_between_rooms_with_part_and_join_announcements():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    out = chat.send(a, "/join Dev")
    assert lines_for(out, b) == ["= part alice #lobby"]
    assert lines_for(out, a) == ["= part alice #lobby", "= join alice #dev", "= who #dev alice"]
    assert chat.server.rooms() == {"#dev": 1, "#lobby": 1}
    out = chat.send(b, "/join #dev")
    assert lines_for(out, a) == ["= join bob #dev"]
    assert lines_for(out, b)[-1] == "= who #dev alice bob"
    assert chat.server.rooms() == {"#dev": 2}  # empty rooms disappear


def test_join_errors():
    chat = Chat()
    a = chat.user("alice")
    assert chat.send(a, "/join") == [Send(a, "! usage /join ROOM")]
    assert chat.send(a, "/join bad room") == [
        Send(
            a, "! bad-room a room name is 1-20 characters from A-Z a-z 0-9 _ - after an optional #"
        )
    ]
    assert chat.send(a, "/join LOBBY") == [Send(a, "! already-there you are already in #lobby")]


def test_leave_and_messages_outside_a_room():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    out = chat.send(a, "/part")
    assert lines_for(out, b) == ["= part alice #lobby"]
    assert lines_for(out, a) == [
        "= part alice #lobby",
        "= info you are in no room now; /join ROOM to talk",
    ]
    assert chat.server.room(a) is None
    assert chat.send(a, "/leave") == [Send(a, "! no-room you are in no room")]
    assert chat.send(a, "hello?") == [Send(a, "! no-room you are in no room: /join ROOM first")]
    assert chat.send(a, "/me waves") == [Send(a, "! no-room you are in no room: /join ROOM first")]
    assert chat.send(a, "/who") == [Send(a, "! no-room you are in no room: /who ROOM or /who *")]


def test_rooms_lists_member_counts_sorted():
    chat = Chat()
    chat.user("a")
    b = chat.user("b")
    c = chat.user("c")
    chat.send(b, "/join zoo")
    chat.send(c, "/join art")
    assert chat.send(c, "/rooms") == [Send(c, "= rooms #art(1) #lobby(1) #zoo(1)")]
    chat.send(b, "/join art")
    assert chat.send(c, "/rooms") == [Send(c, "= rooms #art(2) #lobby(1)")]


def test_who_variants():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("Bob")
    chat.connect()  # no nick yet: not listed
    chat.send(b, "/join dev")
    chat.send(b, "/leave")
    chat.user("carol")
    assert chat.send(a, "/who") == [Send(a, "= who #lobby alice carol")]
    assert chat.send(a, "/who dev") == [Send(a, "! no-such-room nobody is in #dev")]
    assert chat.send(a, "/who bad!") == [
        Send(
            a, "! bad-room a room name is 1-20 characters from A-Z a-z 0-9 _ - after an optional #"
        )
    ]
    assert chat.send(a, "/who *") == [Send(a, "= who * alice@#lobby Bob carol@#lobby")]


# --- messages ------------------------------------------------------------------------------------


def test_room_message_reaches_the_room_only_including_the_sender():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    c = chat.user("carol")
    chat.send(c, "/join other")
    out = chat.send(a, "hello all")
    assert out == [Send(a, "<alice> hello all"), Send(b, "<alice> hello all")]
    assert lines_for(out, c) == []


def test_double_slash_sends_a_line_starting_with_slash():
    chat = Chat()
    a = chat.user("alice")
    assert chat.send(a, "//etc/passwd is a path") == [Send(a, "<alice> /etc/passwd is a path")]


def test_action():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    assert chat.send(a, "/me waves  hello") == [
        Send(a, "* alice waves  hello"),
        Send(b, "* alice waves  hello"),
    ]
    assert chat.send(a, "/me") == [Send(a, "! usage /me ACTION")]


def test_private_messages():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("Bob")
    c = chat.user("carol")
    chat.send(b, "/join elsewhere")
    out = chat.send(a, "/msg bob  meet me at 5 ")
    assert out == [Send(b, "[from alice] meet me at 5"), Send(a, "[to Bob] meet me at 5")]
    assert lines_for(out, c) == []
    assert chat.send(a, "/tell BOB hi") == [Send(b, "[from alice] hi"), Send(a, "[to Bob] hi")]
    assert chat.send(a, "/msg alice note to self") == [Send(a, "[from alice] note to self")]


def test_private_message_errors():
    chat = Chat()
    a = chat.user("alice")
    assert chat.send(a, "/msg") == [Send(a, "! usage /msg NICK TEXT")]
    assert chat.send(a, "/msg bob") == [Send(a, "! usage /msg NICK TEXT")]
    assert chat.send(a, "/msg bob   ") == [Send(a, "! usage /msg NICK TEXT")]
    assert chat.send(a, "/msg bob hi") == [Send(a, "! no-such-nick nobody is called bob")]


def test_unknown_command_and_case_insensitive_commands():
    chat = Chat()
    a = chat.user("alice")
    assert chat.send(a, "/frobnicate now") == [Send(a, "! unknown-command /frobnicate (try /help)")]
    assert chat.send(a, "/") == [Send(a, "! unknown-command / (try /help)")]
    assert chat.send(a, "/ROOMS") == [Send(a, "= rooms #lobby(1)")]


def test_help_lists_every_command():
    chat = Chat()
    a = chat.connect()
    text = "\n".join(lines_for(chat.send(a, "/help"), a))
    assert all(line.startswith("= help ") for line in text.splitlines())
    for cmd in ("/nick", "/join", "/leave", "/rooms", "/who", "/msg", "/me", "/help", "/quit"):
        assert cmd in text


def test_empty_and_blank_lines_are_ignored():
    chat = Chat()
    a = chat.user("alice")
    assert chat.send(a, b"\n\r\n   \t \n") == []


def test_control_characters_are_removed_from_text():
    assert clean_text("a\tb\x1b[2Jc\x07\x7f\u202eevil\x85 ") == "a b[2Jcevil"
    chat = Chat()
    a = chat.user("alice")
    assert chat.send(a, "hi \x1b[31mred\x1b[0m") == [Send(a, "<alice> hi [31mred[0m")]
    assert chat.send(a, "caf\u00e9 \U0001f600") == [Send(a, "<alice> caf\u00e9 \U0001f600")]


# --- leaving -------------------------------------------------------------------------------------


def test_quit_says_bye_tells_the_room_and_closes():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    out = chat.send(a, "/quit gone fishing")
    assert out == [
        Send(a, "= bye goodbye"),
        Send(b, "= quit alice gone fishing"),
        Close(a, "quit: gone fishing"),
    ]
    assert chat.send(a, "still here?") == []  # a closing connection is not listened to
    assert chat.send(b, "/who *") == [Send(b, "= who * bob@#lobby")]
    assert chat.server.disconnect(a, 0) == []  # already announced
    assert chat.server.connections == 1


def test_quit_stops_processing_the_rest_of_the_chunk():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    out = chat.send(a, b"/quit\nafter quit\n")
    assert lines_for(out, b) == ["= quit alice quit"]


def test_disconnect_announces_quit_and_frees_the_nick():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    assert chat.server.disconnect(a, 0, "connection reset") == [
        Send(b, "= quit alice connection reset")
    ]
    assert chat.server.disconnect(a, 0) == []
    c = chat.connect()
    assert lines_for(chat.send(c, "/nick alice"), c)[0] == "= welcome alice"
    assert chat.server.feed(a, b"x\n", 0) == []  # unknown connection: nothing


def test_eof_processes_the_unfinished_line_then_says_goodbye():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    assert chat.send(a, b"last words") == []
    out = chat.server.eof(a, 0)
    assert out == [
        Send(a, "<alice> last words"),
        Send(b, "<alice> last words"),
        Send(a, "= bye end of input, goodbye"),
        Send(b, "= quit alice end of input"),
        Close(a, "end of input"),
    ]
    assert chat.server.eof(a, 0) == []


def test_server_side_close():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    out = chat.server.close(a, "idle-timeout", "no input for 60s; closing", "idle timeout", 0)
    assert out == [
        Send(a, "! idle-timeout no input for 60s; closing"),
        Send(b, "= quit alice idle timeout"),
        Close(a, "idle timeout"),
    ]
    assert chat.server.close(a, "x", "y", "z", 0) == []


def test_quit_without_nick_and_connect_twice():
    chat = Chat()
    a = chat.connect()
    assert chat.server.disconnect(a, 0) == []
    assert chat.server.connect(2, 0) == [Send(2, HELLO)]
    with pytest.raises(ValueError):
        chat.server.connect(2, 0)


# --- limits --------------------------------------------------------------------------------------


def test_over_long_line_is_an_error_then_close():
    chat = Chat(max_line=32)
    a = chat.user("alice")
    b = chat.user("bob")
    assert lines_for(chat.send(a, "x" * 32), b) == ["<alice> " + "x" * 32]  # exactly the limit
    out = chat.send(a, b"y" * 33 + b"\n")
    assert out == [
        Send(a, "! line-too-long lines are limited to 32 bytes; closing"),
        Send(b, "= quit alice line too long"),
        Close(a, "line too long"),
    ]


def test_over_long_line_is_caught_before_its_end_arrives():
    chat = Chat(max_line=32)
    a = chat.user("alice")
    assert chat.send(a, b"z" * 33) == []  # 33 may still be 32 + "\r"
    assert chat.send(a, b"z")[0] == Send(
        a, "! line-too-long lines are limited to 32 bytes; closing"
    )


def test_crlf_does_not_count_against_the_limit():
    chat = Chat(max_line=16)
    a = chat.user("bob")
    assert chat.send(a, b"0123456789abcdef\r\n") == [Send(a, "<bob> 0123456789abcdef")]


def test_invalid_utf8_is_an_error_and_the_connection_stays():
    chat = Chat()
    a = chat.user("alice")
    for bad in (b"\xc3\x28\n", b"\xff\xff\n", b"caf\xe9\n", b"\xed\xa0\x80\n"):
        assert chat.send(a, bad) == [Send(a, "! bad-utf8 line dropped: it is not valid UTF-8")]
    assert chat.send(a, "still ok") == [Send(a, "<alice> still ok")]


def test_flood_limit_with_explicit_timestamps():
    chat = Chat(flood_rate=2, flood_burst=3, flood_strikes=3)
    a = chat.user("alice")  # the /nick line took one token at t=0
    flood = "! flood slow down: at most 2 lines/s (bursts of 3); line dropped"
    assert chat.send(a, "one") == [Send(a, "<alice> one")]
    assert chat.send(a, "two") == [Send(a, "<alice> two")]
    assert chat.send(a, "three") == [Send(a, flood)]  # strike 1
    chat.now = 0.5  # one token back
    assert chat.send(a, "four") == [Send(a, "<alice> four")]
    assert chat.send(a, "five") == [Send(a, flood)]  # strike 2
    chat.now = 2.0  # 3 tokens: full again, strikes forgiven
    for word in ("six", "seven", "eight"):
        assert chat.send(a, word) == [Send(a, f"<alice> {word}")]
    assert chat.send(a, "nine") == [Send(a, flood)]
    assert chat.send(a, "ten") == [Send(a, flood)]
    b = chat.user("bob")
    assert chat.send(a, "eleven") == [
        Send(a, "! flood-close too many lines too fast; closing"),
        Send(b, "= quit alice flooding"),
        Close(a, "flooding"),
    ]


def test_flood_limit_applies_within_one_chunk():
    chat = Chat(flood_rate=1, flood_burst=5, flood_strikes=2)
    a = chat.connect()
    out = chat.send(a, b"/help\n" * 4 + b"x\n" * 3)
    texts = lines_for(out, a)
    assert texts.count("! no-nick choose a nick first: /nick NAME") == 1
    assert texts[-1] == "! flood-close too many lines too fast; closing"
    assert out[-1] == Close(a, "flooding")


def test_flood_limit_disabled_with_rate_zero():
    chat = Chat(flood_rate=0, flood_burst=1)
    a = chat.user("alice")
    out = chat.send(a, b"x\n" * 500)
    assert len(out) == 500


def test_token_bucket():
    bucket = TokenBucket(rate=4, burst=2, now=100.0)
    assert bucket.take(100.0) and bucket.take(100.0) and not bucket.take(100.0)
    assert not bucket.take(100.125)  # half a token
    assert bucket.take(100.25)
    assert not bucket.take(50.0)  # a clock going backwards gives nothing
    assert bucket.full(200.0) and bucket.tokens == 2


# --- telnet --------------------------------------------------------------------------------------


def test_telnet_negotiation_is_refused_and_stripped():
    chat = Chat()
    a = chat.user("alice")
    data = bytes([IAC, DO, 1, IAC, WILL, 31, IAC, WONT, 3, IAC, DONT, 24]) + b"hi\r\n"
    assert chat.send(a, data) == [
        SendRaw(a, bytes([IAC, WONT, 1])),
        SendRaw(a, bytes([IAC, DONT, 31])),
        Send(a, "<alice> hi"),
    ]


def test_telnet_subnegotiation_and_escaped_iac_are_stripped():
    chat = Chat()
    a = chat.user("alice")
    sub = bytes([IAC, SB, 24, 0]) + b"xterm" + bytes([IAC, IAC, 9, IAC, SE])
    assert chat.send(a, b"he" + sub + b"llo\r\n") == [Send(a, "<alice> hello")]
    # IAC IAC in data is a 0xFF byte: never valid UTF-8
    assert chat.send(a, bytes([IAC, IAC]) + b"\n") == [
        Send(a, "! bad-utf8 line dropped: it is not valid UTF-8")
    ]


def test_telnet_interrupt_is_a_quit():
    chat = Chat()
    a = chat.user("alice")
    b = chat.user("bob")
    out = chat.send(a, b"typing" + bytes([IAC, IP, IAC, DO, 6]))
    assert out == [
        Send(a, "= bye interrupted (Ctrl-C), goodbye"),
        Send(b, "= quit alice interrupted"),
        Close(a, "interrupted"),
    ]


def test_telnet_are_you_there_and_line_editing():
    chat = Chat()
    a = chat.user("alice")
    assert chat.send(a, bytes([IAC, AYT])) == [Send(a, "= ayt yes, still here")]
    data = b"helo" + bytes([IAC, EC]) + b"lo caf\xc3\xa9" + bytes([IAC, EC]) + b"e\r\n"
    assert chat.send(a, data) == [Send(a, "<alice> hello cafe")]
    assert chat.send(a, b"scrap this" + bytes([IAC, EL]) + b"keep\n") == [Send(a, "<alice> keep")]


def test_framer_events():
    framer = LineFramer(max_line=8)
    assert framer.feed(b"a\nb\r\n\r\n" + bytes([IAC, DO, 3, IAC, 245])) == [
        Line(b"a"),
        Line(b"b"),
        Line(b""),
        TelnetOption(DO, 3),
        TelnetCommand(245),
    ]
    assert framer.feed(b"123") == [] and framer.pending == 3
    assert framer.flush() == [Line(b"123")]
    assert framer.feed(b"123456789\n") == [LineTooLong(8)]
    assert framer.dead and framer.feed(b"ok\n") == [] and framer.flush() == []


def test_framer_keeps_its_buffer_bounded_while_skipping_subnegotiation():
    framer = LineFramer(max_line=8)
    assert framer.feed(bytes([IAC, SB]) + b"x" * 100_000) == []
    assert framer.pending == 0
    assert framer.feed(bytes([IAC, SE]) + b"ok\n") == [Line(b"ok")]


class _Scanned(bytes):
    """A chunk that counts the bytes its ``find`` calls look at (the framer's searches)."""

    looked = 0

    def find(self, sub, start=0, *args):
        at = super().find(sub, start, *args)
        _Scanned.looked += (at + len(sub) if at >= 0 else len(self)) - start
        return at


@pytest.mark.parametrize("unit", [bytes([IAC, NOP]), bytes([IAC, IAC]), b"\n"])
def test_framing_a_chunk_looks_at_each_byte_a_bounded_number_of_times(unit):
    # each newline searched the rest of the chunk for an IAC, and each IAC the rest for a
    # newline: a client sending IAC NOP (no lines, so no flood limit) cost 30 ms a 64 KiB read
    # and 2 s a MiB, its size squared. Counted, not timed: the searches may look at each byte
    # of the chunk about twice (once for each of the two bytes searched for), not once per line.
    data = _Scanned(unit * ((64 << 10) // len(unit)))
    _Scanned.looked = 0
    LineFramer(max_line=len(data)).feed(data)
    assert _Scanned.looked <= 3 * len(data)


# --- properties ----------------------------------------------------------------------------------

_pieces = st.sampled_from(
    [
        b"hi",
        b"\n",
        b"\r\n",
        b"\r",
        b"/nick a\n",
        b"/who *\n",
        b"\xff",
        bytes([IAC, IP]),
        bytes([IAC, DO, 1]),
        bytes([IAC, SB, 1, 2, IAC, SE]),
        bytes([IAC, EC]),
        bytes([IAC, EL]),
        b"\xc3\xa9",
        b"\xc3",
        b"x" * 20,
        bytes([IAC, AYT]),
        bytes([IAC, IAC]),
    ]
)
_streams = st.one_of(st.binary(max_size=300), st.lists(_pieces, max_size=40).map(b"".join))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[i:j] for i, j in zip(edges, edges[1:], strict=False)]


@settings(max_examples=300, deadline=None)
@given(_streams, st.lists(st.integers(min_value=0), max_size=12), st.integers(8, 40))
def test_framing_is_split_invariant(data, cuts, max_line):
    whole = LineFramer(max_line).feed(data)
    framer = LineFramer(max_line)
    pieces = [e for chunk in _split(data, cuts) for e in framer.feed(chunk)]
    framer2 = LineFramer(max_line)
    bytewise = [e for i in range(len(data)) for e in framer2.feed(data[i : i + 1])]
    assert pieces == whole == bytewise


@settings(max_examples=200, deadline=None)
@given(_streams, st.lists(st.integers(min_value=0), max_size=12))
def test_chat_outputs_are_split_invariant(data, cuts):
    def run(chunks):
        server = ChatServer(max_line=24, flood_rate=1, flood_burst=3, flood_strikes=2)
        out = server.connect(1, 0) + server.connect(2, 0) + server.feed(2, b"/nick watcher\n", 0)
        for chunk in chunks:
            out += server.feed(1, chunk, 0.0)
        return out + server.eof(1, 0) + server.disconnect(1, 0)

    assert run(_split(data, cuts)) == run([data])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), _streams, st.floats(0, 10)), max_size=20))
def test_random_bytes_from_many_connections_never_raise(steps):
    server = ChatServer(max_line=32, flood_rate=3, flood_burst=4)
    for conn in (1, 2, 3):
        server.connect(conn, 0)
    now = 0.0
    for conn, data, dt in steps:
        now += dt
        for out in server.feed(conn, data, now):
            assert isinstance(out, Send | SendRaw | Close)
            if isinstance(out, Send):
                assert "\n" not in out.line and "\r" not in out.line
                assert out.line[:1] in ("=", "!", "<", "*", "[")
    for conn in (1, 2, 3):
        server.eof(conn, now)
        server.disconnect(conn, now)
    assert server.connections == 0 and server.rooms() == {}


def test_every_error_code_and_event_is_documented():
    source = Path(chatcore.__file__).read_text()
    doc = (Path(__file__).resolve().parents[2] / "docs" / "chat-protocol.md").read_text()
    codes = set(re.findall(r'"! ([a-z0-9-]+) ', source))
    events = set(re.findall(r'"= ([a-z]+)[ "]', source))
    assert {"bad-nick", "flood", "line-too-long", "bad-utf8"} <= codes
    assert {"join", "part", "quit", "nick", "who", "rooms", "bye"} <= events
    for code in codes | {"idle-timeout", "shutdown", "server-full"}:
        assert f"| `{code}` |" in doc, code
    for event in events:
        assert f"`= {event} " in doc, event
