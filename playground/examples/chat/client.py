"""Interactive client for the chat-line server: ``tcpplay-chat HOST:PORT --nick NAME``.

Also ``python -m playground chat-client HOST:PORT --nick NAME``. It connects, sends
``/nick NAME``, prints every server line on stdout as it arrives, control characters removed
(its own notices go to stderr, prefixed ``-- ``), and sends each line typed on stdin. It exits
with status 0 on end of input (Ctrl-D: it sends ``/quit`` and waits for the server's goodbye),
on Ctrl-C (the same), and when the server closes the connection; with status 1 when it cannot
connect.

The protocol logic (:class:`ChatClientProtocol`, :class:`InputLines`) takes its output functions
and clock as arguments, so it is tested with ``StringTransport``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from twisted.internet import defer, endpoints, protocol, task
from twisted.python import usage

from playground.common import tlsnames
from playground.common.addresses import client_endpoint, client_string
from playground.common.options import ArgumentParser
from playground.examples.chat.core import NICK_RULE, clean_text, valid_nick

MAX_LINE = 1 << 20  # server lines longer than this are shown in pieces


def _split_lines(buf: bytearray, start: int, max_line: int) -> tuple[list[bytes], int]:
    """Take complete lines (``\\n``, optional ``\\r``) out of ``buf``; return them and where the
    next search starts (nothing already searched is searched again). Over-long pieces are cut."""
    lines = []
    while True:
        i = buf.find(b"\n", start)
        if i < 0:
            while len(buf) > max_line:
                lines.append(bytes(buf[:max_line]))
                del buf[:max_line]
            return lines, len(buf)
        line = bytes(buf[:i])
        del buf[: i + 1]
        start = 0
        lines.append(line[:-1] if line.endswith(b"\r") else line)


class ChatClientProtocol(protocol.Protocol):
    """The network side: introduces itself, shows server lines, sends lines, quits politely."""

    quit_timeout = 3.0  # seconds to wait for the server's goodbye after /quit

    def __init__(self, nick: str, show: Callable[[str], None],
                 notice: Callable[[str], None] | None = None, clock=None,
                 max_line: int = MAX_LINE):
        self.nick = nick
        self.show = show
        self.notice = notice or (lambda text: None)
        self.clock = clock
        self.max_line = max_line
        self.connected = False
        self.closed = False
        self.quitting = False
        self.close_reason = ""
        self._buf = bytearray()
        self._searched = 0
        self._timer = None
        self._waiters: list[defer.Deferred] = []

    def connectionMade(self):
        self.connected = True
        self.send_line(f"/nick {self.nick}")

    def dataReceived(self, data: bytes):
        self._buf += data
        lines, self._searched = _split_lines(self._buf, self._searched, self.max_line)
        for line in lines:
            self._show(line)

    def _show(self, line: bytes) -> None:
        """Show a server line as text, without the control characters a terminal would obey
        (the server removes them from chat text; another server, or a proxy, may not)."""
        self.show(clean_text(line.decode("utf-8", "replace")))

    def send_line(self, text: str) -> None:
        """Send one line; line breaks inside ``text`` become spaces."""
        if not self.connected or self.closed or self.quitting:
            return
        text = text.replace("\r", "").replace("\n", " ")
        self.transport.write(text.encode("utf-8") + b"\n")

    def quit(self, reason: str = "") -> defer.Deferred:
        """Send ``/quit`` and wait for the server to close; abort after ``quit_timeout``."""
        if self.closed:
            return defer.succeed(self.close_reason)
        if not self.quitting and self.connected:
            self.send_line("/quit " + reason if reason else "/quit")
            self.quitting = True
            if self.clock is not None:
                self._timer = self.clock.callLater(self.quit_timeout, self.transport.abortConnection)
            else:
                self.transport.loseConnection()
        return self.when_closed()

    def when_closed(self) -> defer.Deferred:
        """A Deferred firing with the reason text once the connection is closed."""
        if self.closed:
            return defer.succeed(self.close_reason)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def connectionLost(self, reason=protocol.connectionDone):
        if self._buf:
            self._show(bytes(self._buf))
            self._buf.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self.closed = True
        self.close_reason = (
            "connection closed" if reason.check(protocol.connectionDone.type)
            else tlsnames.lost_reason(reason, self.transport)
        )
        self.notice(f"disconnected: {self.close_reason}")
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self.close_reason)


class InputLines(protocol.Protocol):
    """The terminal side (stdin via ``StandardIO``): each line goes to the server; EOF quits."""

    def __init__(self, client: ChatClientProtocol, max_line: int = 64 * 1024):
        self.client = client
        self.max_line = max_line
        self._buf = bytearray()
        self._searched = 0

    def dataReceived(self, data: bytes):
        self._buf += data
        lines, self._searched = _split_lines(self._buf, self._searched, self.max_line)
        for line in lines:
            self.client.send_line(line.decode("utf-8", "replace"))

    def connectionLost(self, reason=protocol.connectionDone):
        if self._buf:
            self.client.send_line(bytes(self._buf).decode("utf-8", "replace"))
            self._buf.clear()
        self.client.quit()


def _stdout_line(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8", "replace") + b"\n")
    sys.stdout.flush()


def _stderr_line(text: str) -> None:
    sys.stderr.buffer.write(b"-- " + text.encode("utf-8", "replace") + b"\n")
    sys.stderr.flush()


async def _run(reactor, address: str, desc: str, nick: str) -> None:
    from twisted.internet import stdio

    client = ChatClientProtocol(nick, _stdout_line, _stderr_line, clock=reactor)
    try:
        endpoint = client_endpoint(reactor, desc, "HOST:PORT")
        await endpoints.connectProtocol(endpoint, client)
    except Exception as e:
        _stderr_line(f"cannot connect to {address}: {e}")
        raise SystemExit(1)
    _stderr_line(f"connected to {address} as {nick}; /help lists commands, Ctrl-D or /quit leaves")
    # Ctrl-C stops the reactor: say goodbye to the server first and wait (bounded) for its close.
    reactor.addSystemEventTrigger("before", "shutdown", lambda: client.quit("interrupted"))
    stdio.StandardIO(InputLines(client), reactor=reactor)
    await client.when_closed()


def build_parser(prog: str = "tcpplay-chat") -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        description="Interactive client for the tcpplay chat server (twistd -n tcpplay chat). "
        "Lines you type go to your room; /help lists the commands. Ctrl-D or /quit leaves.",
    )
    parser.add_argument("address", metavar="HOST:PORT",
                        help="the server: PORT (on 127.0.0.1), HOST:PORT or a Twisted client "
                        "endpoint string (tcp:host=H:port=P, unix:path=P, tls:...)")
    parser.add_argument("--nick", required=True, help=f"your nick: {NICK_RULE}")
    return parser


def main(argv: list[str] | None = None, prog: str = "tcpplay-chat") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not valid_nick(args.nick):
        parser.error(f"--nick: {args.nick!r} is not a valid nick ({NICK_RULE})")
    try:
        desc = client_string(args.address, "HOST:PORT")
    except usage.UsageError as e:
        parser.error(str(e))
    try:
        task.react(_run, (args.address, desc, args.nick))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
