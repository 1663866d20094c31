"""The console sink: one readable, terminal-safe line per exchange, pair open/close and raw views.

Lines look like::

    #3 open 127.0.0.1:51234 -> 127.0.0.1:6379
    #3 127.0.0.1:51234 SET foo "bar" -> +OK (0.21 ms)
    #3 <- message news "hello"
    #4 127.0.0.1:5555 GET /get -> 200 OK application/json 24 B "{\\"origin\\": \\"127.0.0.1\\"}" (1.20 ms)
        > Host: 127.0.0.1:8081
        < Content-Type: application/json
    #5 -> EHLO example.com\\r\\n
    #3 close 127.0.0.1:51234 c2s 120 B s2c 300 B 1.234 s (fin by client)

``->`` marks client-to-server bytes, ``<-`` server-to-client. Every byte of traffic goes through
``views.escape``; values longer than ``max_value`` bytes are cut and their full length shown.
An HTTP exchange's header lines (``>`` request, ``<`` response) follow at ``verbose`` 1, its
bodies too at 2. ``lifecycle=False`` leaves out the open/protocol/FIN/close lines.
Colours (ANSI) only when asked or, with ``auto``, when the output is a terminal.

Records are queued and written in batches, each in one ``write()`` of whole lines
(``batching.BufferedSink``, shared with the JSON sink); the common Redis exchange without colours
is made as bytes on a fast path (``plain``: one look at the batch, the common replies' bytes), and
the common pipelined run (one latency; one reply for all, or a printable bulk string each) in one
go, with C-level maps and joins.

A console writing to a pipe or a terminal (not a regular file) uses ``--slow-sink drop`` by
default: its stdout is a ``dropwriter.DropWriter``, and a batch that finds that writer's buffer
full is dropped and counted, never formatted (``--slow-sink block``: wait, every record kept).

``--slow-sink block`` on a pipe or terminal writes through a ``blockwriter.BlockWriter``: its
blocking ``write()`` ends when SIGINT/SIGTERM arrives (a pipe nobody reads would otherwise hold
the reactor thread for ever, the drain deadline and the second signal with it). From that
signal on, or once the reactor is stopping, the console drops instead of waiting, as with
``drop``: a ``DropWriter`` over the same stdout takes what the pipe takes now, the rest is
counted, the "... N records dropped" line is attempted at close and the log says the total.
A regular file is written as before (a file write does not block for ever).
"""

from __future__ import annotations

import re
import sys
from itertools import repeat as _repeat
from operator import itemgetter
from operator import mod as _mod

from playground.codec import values as resp
from playground.common.twistedprivate import reactor_stopped
from playground.decode import records as R
from playground.decode.views import escape, hexdump_lines, is_text, quoted
from playground.sinks import blockwriter
from playground.sinks.batching import BufferedSink
from playground.sinks.plain import PlainReplies, is_plain, plain_batch, remember

MAX_ITEMS = 8  # aggregate elements shown on a console line
MAX_AGGREGATE = 300  # characters of an aggregate reply's elements before "... (N items)"
LINE_PREVIEW = 40  # body bytes on the one-line HTTP view (-v 0), within --max-value
LIFECYCLE = frozenset({R.Open, R.Detected, R.HalfClose, R.Close})  # hidden by --lifecycle hide


# -- colours -------------------------------------------------------------------------------

class _Palette:
    def __init__(self, on: bool):
        def c(code):
            return (lambda s: f"\x1b[{code}m{s}\x1b[0m") if on else (lambda s: s)

        self.dim = c("2")
        self.cmd = c("1;36")
        self.ok = c("32")
        self.err = c("31")
        self.c2s = c("33")
        self.s2c = c("35")
        self.bold = c("1")


_SAFE_TOKEN = re.compile(rb"[0-9A-Za-z_\-.:/@*{}]{1,64}")


def _safe_token(arg: bytes) -> bool:
    # len(): a long value the decoder cut (resp.Truncated) is as long as it was on the wire
    return len(arg) <= 64 and _SAFE_TOKEN.fullmatch(arg) is not None


_TOKEN_BYTES = bytes(b for b in range(256) if _SAFE_TOKEN.fullmatch(bytes([b])))


def _bare(keys: list) -> bool:
    """Whether each of ``keys`` (bytes) is a safe token, shown bare: what ``_SAFE_TOKEN``
    says of each, said of all at once (one ``bytes.translate`` deleting the token bytes, not a
    regular expression per key). A key cut by the decoder (``Truncated``) counts as long."""
    sizes = set(map(len, keys))  # a few distinct ones: min and max look at those only
    return 0 < min(sizes) and max(sizes) <= 64 and not b"".join(keys).translate(None, _TOKEN_BYTES)


def format_args(args, limit: int) -> str:
    """``SET foo "bar"``: the command word and a simple key bare, the rest quoted."""
    out = []
    for i, a in enumerate(args[:64]):
        if not isinstance(a, bytes):
            a = str(a).encode()
        if i == 0 or (i == 1 and _safe_token(a)):
            out.append(_cut(a, limit))
        else:
            out.append(quoted(a, limit))
    if len(args) > 64:
        out.append(f"... ({len(args)} arguments)")
    return " ".join(out)


def format_value(v, limit: int, depth: int = 0, budget: list | None = None) -> str:
    """A RESP value the way redis-cli would say it, on one line, bounded: each string at
    ``limit`` bytes, each aggregate at ``MAX_ITEMS`` elements, three levels deep, and an
    aggregate's elements together at about ``MAX_AGGREGATE`` characters (``budget``: the
    characters left, shared by the nested calls)."""
    if isinstance(v, bytes):
        return _spent(budget, quoted(v, limit))
    if v is None:
        return _spent(budget, "(nil)")
    if isinstance(v, bool):
        return _spent(budget, "(true)" if v else "(false)")
    if isinstance(v, int):
        return _spent(budget, f"(integer) {v}")
    if isinstance(v, float):
        return _spent(budget, f"(double) {v!r}")
    if isinstance(v, resp.Simple):
        return _spent(budget, "+" + _cut(v.value, limit))
    if isinstance(v, resp.Error):
        return _spent(budget, "-" + _cut(v.value, limit))
    if depth >= 3:
        return _spent(budget, "[...]")
    if budget is None and isinstance(v, (list, tuple, resp.Map, resp.Set, resp.Push)):
        budget = [max(MAX_AGGREGATE, limit)]
    if isinstance(v, (list, tuple)):
        return _items("[", v, "]", limit, depth, budget)
    if isinstance(v, resp.Map):
        shown = []
        for k, x in v.items[:MAX_ITEMS]:
            if budget[0] <= 0:
                break
            shown.append(f"{format_value(k, limit, depth + 1, budget)}: "
                         f"{format_value(x, limit, depth + 1, budget)}")
        more = f", ... ({len(v.items)} pairs)" if len(v.items) > len(shown) else ""
        return "{" + ", ".join(shown) + more + "}"
    if isinstance(v, resp.Set):
        return _items("(set) [", v.items, "]", limit, depth, budget)
    if isinstance(v, resp.Push):
        return _items("(push) [", v.items, "]", limit, depth, budget)
    if isinstance(v, resp.BigNumber):
        return _spent(budget, f"(big number) {v.value}")
    if isinstance(v, resp.Verbatim):
        return _spent(budget, quoted(v.text, limit))
    if isinstance(v, resp.Attributed):
        return format_value(v.value, limit, depth, budget)
    if isinstance(v, resp.Inline):
        return _spent(budget, format_args(v.args, limit))
    return _spent(budget, escape(repr(v).encode()[:200]))


def _cut(data: bytes, limit: int) -> str:
    """An unquoted value (command word, bare key, simple string, error): escaped, past
    ``limit`` bytes cut with its full length (``len()``: a value the decoder cut,
    ``resp.Truncated``, says its own)."""
    if limit and len(data) > limit:
        return f"{escape(data[:limit])}... ({len(data)} bytes)"
    return escape(data)


def _spent(budget: list | None, text: str) -> str:
    if budget is not None:
        budget[0] -= len(text) + 2  # and its ", "
    return text


def _items(open_, items, close, limit, depth, budget) -> str:
    if not items:
        return open_ + close
    shown = []
    for x in items[:MAX_ITEMS]:
        if budget[0] <= 0:
            break
        shown.append(format_value(x, limit, depth + 1, budget))
    more = f", ... ({len(items)} items)" if len(items) > len(shown) else ""
    return open_ + ", ".join(shown) + more + close


# Replies that are the server's documentation of itself (COMMAND, COMMAND DOCS, COMMAND INFO,
# COMMAND LIST): redis-cli asks for all of it when it starts. Shown as a count and a few names.
_DOC_SUBCOMMANDS = frozenset({None, b"DOCS", b"INFO", b"LIST"})
_NAMES_SHOWN = 3


def command_summary(command, reply, limit: int) -> str | None:
    """``(240 commands: "mset", "zdiff", "auth", ... 237 more)`` for a big reply (more than
    ``MAX_ITEMS`` entries) to ``COMMAND`` or its DOCS, INFO or LIST; None for any other."""
    if not command or not isinstance(command[0], bytes) or command[0].upper() != b"COMMAND":
        return None
    sub = command[1] if len(command) > 1 else None
    if (sub.upper() if isinstance(sub, bytes) else sub) not in _DOC_SUBCOMMANDS:
        return None  # COMMAND GETKEYS answers keys, COMMAND HELP text
    if isinstance(reply, resp.Attributed):
        reply = reply.value
    if isinstance(reply, resp.Map):  # RESP3 COMMAND DOCS: name -> docs
        names = [k for k, _ in reply.items]
    elif isinstance(reply, (list, tuple)):
        items = reply
        if len(items) % 2 == 0 and all(isinstance(x, bytes) for x in items[::2]) and all(
                isinstance(x, (list, tuple, resp.Map)) for x in items[1::2]):
            names = items[::2]  # RESP2 COMMAND DOCS: name, docs, name, docs, ...
        else:  # COMMAND / COMMAND INFO: one array per command, its name first; COMMAND LIST
            names = [x[0] if isinstance(x, (list, tuple)) and x else x for x in items]
    else:
        return None
    if len(names) <= MAX_ITEMS:
        return None
    shown = ", ".join(quoted(n, min(limit, 40) or 40) if isinstance(n, bytes) else "?"
                      for n in names[:_NAMES_SHOWN])
    return f"({len(names)} commands: {shown}, ... {len(names) - _NAMES_SHOWN} more)"


def fault_mark(r) -> str:
    """The mark of an exchange a fault acted on (``fault``, ``injected``): `` [fault: name]``
    or `` [injected: name]``."""
    return f" [{'injected' if r.injected else 'fault'}: {r.fault}]"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return ""
    ms = seconds * 1000
    return f" ({ms:.2f} ms)" if ms < 10 else f" ({ms:.1f} ms)" if ms < 1000 else f" ({seconds:.2f} s)"


def _ms_bytes(seconds: float | None) -> bytes:
    """``_ms`` as bytes, made without str formatting (the console's fast path)."""
    if seconds is None:
        return b""
    ms = seconds * 1000
    if ms < 10:
        return b" (%.2f ms)" % ms
    return b" (%.1f ms)" % ms if ms < 1000 else b" (%.2f s)" % seconds


def _size(n: int) -> str:
    return f"{n} B"


class ConsoleFormatter:
    """The lines of one record. ``verbose``: the HTTP detail level (0: one line with a short
    body preview; 1: and the headers; 2: and the bodies, see ``_http``); ``lifecycle``: show
    the open/protocol/FIN/close lines."""

    def __init__(self, color: bool = False, max_value: int = 200, verbose: int = 0,
                 lifecycle: bool = True):
        self.color = color
        self.p = _Palette(color)
        self.max_value = max_value
        self.verbose = verbose
        self.lifecycle = lifecycle

    def lines(self, r) -> list[str]:
        p = self.p
        lim = self.max_value
        kind = type(r)
        if not self.lifecycle and kind in LIFECYCLE:
            return []
        tag = p.dim(f"#{r.pair}")
        if kind is R.RedisExchange or kind is R.FaultedRedisExchange:
            reply = r.reply
            if isinstance(reply, resp.Error):
                shown = p.err(format_value(reply, lim))
            else:
                summary = command_summary(r.command, reply, lim)
                shown = p.ok(summary if summary is not None else format_value(reply, lim))
            mark = "" if kind is R.RedisExchange else fault_mark(r)
            return [f"{tag} {r.client} {p.cmd(format_args(r.command, lim))} -> {shown}"
                    f"{_ms(r.latency)}{mark}"]
        if kind is R.HttpExchange:
            return self._http(r, tag)
        if kind is R.TextLine:
            arrow = self._arrow(r.direction)
            data = r.data
            text = escape(data[:lim] if lim else data)
            if lim and len(data) > lim:
                text += f"... ({len(data)} bytes)"
            elif r.partial:
                text += p.dim(" (no line end yet)") if len(data) < 4096 else ""
            return [f"{tag} {arrow} {text}"]
        if kind is R.HexChunk:
            arrow = self._arrow(r.direction)
            data = r.data
            shown = data[:lim] if lim else data
            out = [f"{tag} {arrow} {len(data)} bytes at offset {r.offset}"]
            out.extend("    " + line for line in hexdump_lines(shown, r.offset))
            if len(shown) < len(data):
                out.append(f"    ... {len(data) - len(shown)} more bytes")
            return out
        if kind is R.RedisPush:
            v = r.value
            items = v.items if isinstance(v, resp.Push) else v
            if isinstance(items, (list, tuple)) and all(isinstance(x, bytes) for x in items):
                body = format_args(items, lim)
            else:
                body = format_value(v, lim)
            return [f"{tag} {p.s2c('<-')} {body}"]
        if kind is R.RedisUnanswered:
            return [f"{tag} {r.client} {p.cmd(format_args(r.command, lim))} -> "
                    f"{p.dim('(no reply before close)')}"]
        if kind is R.Open:
            via = f" (via {r.listen})"
            return [f"{tag} {p.bold('open')} {r.client} -> {r.server}{via}"]
        if kind is R.Close:
            return [f"{tag} {p.bold('close')} {r.client} c2s {_size(r.bytes_c2s)} "
                    f"s2c {_size(r.bytes_s2c)} {r.duration:.3f} s ({r.how} by {r.closed_by}"
                    f"{': ' + r.reason if r.reason else ''})"]
        if kind is R.HalfClose:
            who = "client" if r.direction == "c2s" else "server"
            return [f"{tag} {self._arrow(r.direction)} FIN ({who} finished sending)"]
        if kind is R.Detected:
            how = "forced" if r.forced else "detected"
            return [f"{tag} protocol {r.protocol} ({how})"]
        if kind is R.Undecodable:
            at = f" at offset {r.offset}" if r.offset is not None else ""
            return [f"{tag} {self._arrow(r.direction)} {p.err('undecodable ' + r.protocol)}"
                    f"{at}: {escape(r.reason.encode())}; showing hex from here"]
        if kind is R.Notice:
            return [f"{tag} note: {escape(r.message.encode())}"]
        return [f"{tag} {escape(repr(r).encode()[:300])}"]

    def _arrow(self, direction: str) -> str:
        return self.p.c2s("->") if direction == "c2s" else self.p.s2c("<-")

    def _http(self, r, tag) -> list[str]:
        """The exchange's line, with the start of a text response body (at most
        ``LINE_PREVIEW`` bytes); with ``verbose`` 1 the headers follow, one a line (``>``
        request, ``<`` response, as ``curl -v`` marks them), with 2 each body's preview after
        its headers and an empty marker line (text as lines, else a hexdump). Everything from
        the traffic is escaped; values are cut at ``max_value`` bytes with their length."""
        p = self.p
        lim = self.max_value
        method = escape(r.method) if r.method is not None else "?"
        target = escape(r.target[:lim] if lim else r.target) if r.target is not None else ""
        if r.target is not None and lim and len(r.target) > lim:
            target += f"... ({len(r.target)} bytes)"
        req = f"{method} {target}"
        if r.request_body_size:
            req += f" ({_size(r.request_body_size)})"
        if r.status is None:
            out = [f"{tag} {r.client} {p.cmd(req)} -> {p.dim('(no answer before close)')}"]
        else:
            status = f"{r.status} {escape(r.reason[:lim] if lim else r.reason)}".rstrip()
            status = p.err(status) if r.status >= 400 else p.ok(status)
            extra = ""
            if r.interim:
                extra += " [" + " ".join(str(s) for s in r.interim) + "]"
            ct = f" {escape(r.content_type[:100])}" if r.content_type else ""
            cut = " (cut short)" if not r.complete else ""
            body = self._line_preview(r.response_preview, r.response_body_size)
            mark = "" if r.fault is None else fault_mark(r)
            out = [f"{tag} {r.client} {p.cmd(req)} ->{extra} {status}{ct} "
                   f"{_size(r.response_body_size)}{body}{cut}{_ms(r.latency)}{mark}"]
        if self.verbose >= 1:
            out += self._message(p.c2s(">"), r.request_headers, r.request_preview,
                                 r.request_body_size)
            if r.status is not None:
                out += self._message(p.s2c("<"), r.response_headers, r.response_preview,
                                     r.response_body_size)
        return out

    def _line_preview(self, preview: bytes, size: int) -> str:
        """A text body's first bytes, quoted, for the one-line view (or nothing)."""
        n = min(self.max_value or LINE_PREVIEW, LINE_PREVIEW)
        part = _text_part(preview[:n])
        if not part:
            return ""
        more = "..." if len(part) < size else ""
        return f' "{escape(part, True)}{more}"'

    def _message(self, mark: str, headers, preview: bytes, size: int) -> list[str]:
        lim = self.max_value
        out = []
        for name, value in headers:
            shown = escape(value[:lim] if lim else value)
            if lim and len(value) > lim:
                shown += f"... ({len(value)} bytes)"
            out.append(f"    {mark} {escape(name[:lim] if lim else name)}: {shown}")
        if self.verbose < 2 or not size:
            return out
        out.append(f"    {mark}")
        part = preview[:lim] if lim else preview
        text = _text_part(part)
        if text is not None:
            rows = text.split(b"\n")
            if rows[-1] == b"":
                rows.pop()
            out.extend(f"    {mark} {escape(row.removesuffix(CR))}" for row in rows)
        else:
            out.extend(f"    {mark} {row}" for row in hexdump_lines(part))
            text = part
        if len(text) < size:
            out.append(f"    {mark} ... ({size} bytes)")
        return out


CR = b"\r"


def _text_part(data: bytes) -> bytes | None:
    """``data`` when it is text (``views.is_text``) or text cut inside its last UTF-8
    character (then without that character's first bytes); None when it is not text."""
    if is_text(data):
        return data
    tail = len(data)
    while tail > 0 and len(data) - tail < 3 and 0x80 <= data[tail - 1] < 0xC0:
        tail -= 1  # continuation bytes
    if tail > 0 and data[tail - 1] >= 0xC2 and is_text(data[:tail - 1]):
        return data[:tail - 1]  # a lead byte whose character was cut
    return None


_EXCHANGE = R.RedisExchange
_RUN = R.RedisExchanges
_SECOND = itemgetter(1)
_BYTES_ONLY = {bytes}
_SCALARS = frozenset({resp.Simple, bytes, int, type(None)})  # equal ones are shown alike
_UNSET = object()
# head, command name, second argument[, the rest], reply, latency
_LINE2 = b"%s%s %s -> %s%s"
_LINE2Q = b'%s%s "%s" -> %s%s'
_LINE = b'%s%s %s "%s" -> %s%s'
_LINEQ = b'%s%s "%s" "%s" -> %s%s'
# A command of n arguments (2 to 64) whose second is a bare key, as a line shows it: name, key,
# then each further argument quoted. Indexed by n.
_ARGS = [b""] * 2 + [b"%s %s" + b' "%s"' * (n - 2) for n in range(2, 65)]
_SPACED = b" ".join  # _ARGS[2] % (name, key)


class ConsoleSink(BufferedSink):
    """Writes formatted records to ``out`` (a binary file; default: the process's stdout)."""

    label = "console"
    takes_runs = True  # R.RedisExchanges: see _run

    def __init__(self, out=None, color: str = "auto", max_value: int = 200, reactor=None,
                 verbose: int = 0, lifecycle: bool = True, slow_sink: str | None = None):
        super().__init__(reactor)
        self._target = out
        self.slow_sink = slow_sink  # block, drop, or None: drop unless stdout is a regular file
        self.color = color
        self.max_value = max_value
        self.verbose = verbose  # see ConsoleFormatter
        self.lifecycle = lifecycle
        self.formatter: ConsoleFormatter | None = None
        self._clients: dict = {}  # client address -> bytes
        self._replies = PlainReplies(b"+%s", b"(integer) %d", b"(nil)")
        self._blocker: blockwriter.BlockWriter | None = None  # block on a pipe or terminal

    def _write_batch(self, batch: list, n: int, look: tuple | None = None) -> None:
        if self._blocker is not None and reactor_stopped(self.reactor):
            self._stop_blocking()  # stopping: a write must not wait for a reader
        try:
            super()._write_batch(batch, n, look)
        except blockwriter.Stopped as e:
            self.log.warn("console: a stop was asked for during a write to stdout: what it "
                          "does not take at once is dropped from now on (--slow-sink block)")
            self._stop_blocking(e.written, min(n, e.lines))

    def _stop_blocking(self, written: int = 0, dropped: int = 0) -> None:
        """A stop was asked for: from now on drop what stdout does not take at once
        (``dropped`` records of a write cut short, ``written`` bytes of it out)."""
        from playground.sinks import dropwriter

        blocker, self._blocker = self._blocker, None
        try:
            self._dropper = dropwriter.DropWriter(blocker.fd, self.reactor)
        except OSError:  # cannot be reopened non-blocking (a socket): nothing more is written
            self._dropper = blockwriter.Discard()
        self.out = self._dropper
        if written and dropped:
            self._dropper.write(b"\n")  # end the line cut short
        self._dropper.drop(dropped)

    def open_output(self):
        out = self._target
        if out is None:
            # twistd redirects sys.stdout into its log; write to the real stdout instead.
            out = (sys.__stdout__ or sys.stdout).buffer
            out = self._slow_sink_policy(out)
        on = self.color == "always" or (
            self.color == "auto" and hasattr(out, "isatty") and out.isatty()
        )
        self.formatter = ConsoleFormatter(on, self.max_value, self.verbose, self.lifecycle)
        return out

    def _slow_sink_policy(self, out):
        """stdout as it is (block, a regular file), a BlockWriter (block, a pipe or terminal)
        or a DropWriter over it (drop; see the module docstring)."""
        from playground.sinks import dropwriter

        try:
            fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            return out
        regular = dropwriter.is_regular_file(fd)
        policy = self.slow_sink or ("block" if regular else "drop")
        self.slow_sink = policy
        if policy == "block" and regular:
            return out
        out.flush()
        if policy == "drop":
            try:
                self._dropper = dropwriter.DropWriter(fd, self.reactor)
                return self._dropper
            except OSError as e:
                self.log.info("console: stdout cannot be reopened non-blocking ({error}): "
                              "--slow-sink block", error=e.strerror or e)
                self.slow_sink = "block"
        self._blocker = blockwriter.BlockWriter(fd)  # a stop ends its waits
        return self._blocker

    def close_output(self):
        dropper = self._dropper
        if dropper is None:
            self.out.flush()
            return None
        if dropper.dropped:
            self.log.warn("console: {n} records dropped in all: stdout could not keep up "
                          "(--slow-sink {policy})", n=dropper.dropped, policy=self.slow_sink)
        return dropper.close()

    def format_batch(self, batch: list, look: tuple | None = None) -> bytes:
        lines = []
        append = lines.append
        fmt = self.formatter.lines
        plain = not self.formatter.color
        lim = self.max_value
        reply_text = self._replies
        join = b"".join
        token = _SAFE_TOKEN.fullmatch
        last_latency = last_reply = _UNSET  # pipelined replies share their latency
        text = None
        ms = b""
        last_pair = last_client = None
        head = b""
        args_plain, fewest, most, bulks_plain = (look or plain_batch(batch, lim)) if plain else (
            False, 0, 0, False)
        checked = args_plain and fewest > 1 and most <= 64
        for r in batch:
            if plain and type(r) is _EXCHANGE:
                # The common line without colours, made as bytes (same text as ``lines``):
                # up to 64 short printable-ASCII arguments and a common reply.
                args = r.command
                n = len(args)
                if not checked:
                    try:
                        joined = join(args)
                    except TypeError:  # not all bytes
                        joined = None
                if checked or (
                    joined is not None and 1 < n <= 64 and is_plain(joined) and not (
                        lim and len(joined) > lim and max(map(len, args)) > lim)
                ):
                    if r.reply is not last_reply:  # +OK replies are one object
                        last_reply = r.reply
                        text = reply_text(last_reply, lim, bulks_plain)
                    reply = text
                    if reply is not None:
                        latency = r.latency
                        if latency != last_latency:
                            last_latency = latency
                            ms = _ms_bytes(latency)
                        if r.pair != last_pair or r.client != last_client:
                            last_pair, last_client = r.pair, r.client
                            head = b"#%d %s " % (r.pair, self._client_bytes(r.client))
                        second = args[1]  # bare when it is a simple key, else quoted
                        if n == 2:
                            append((_LINE2 if token(second) else _LINE2Q) % (
                                head, args[0], second, reply, ms))
                        else:
                            append((_LINE if token(second) else _LINEQ) % (
                                head, args[0], second, b'" "'.join(args[2:]), reply, ms))
                        continue
            if type(r) is _RUN:
                self._run(r, append, checked, bulks_plain)
                last_pair = None  # the next exchange makes its own head
                continue
            shown = fmt(r)
            if shown:  # none for a hidden lifecycle record
                append("\n".join(shown).encode("utf-8", "surrogateescape"))
        append(b"")
        return b"\n".join(lines)

    def _run(self, r, append, checked: bool, bulks_plain: bool) -> None:
        """The lines of an ``R.RedisExchanges``: as ``format_batch`` makes them for exchanges,
        the head (pair, client) made once. ``checked``: every argument of the batch is short
        printable ASCII and every command has 2 to 64 of them (``plain_batch``)."""
        if not checked or self.formatter.color:
            append(self.format_batch(r.exchanges())[:-1])  # exchange by exchange
            return
        lim = self.max_value
        reply_text = self._replies
        token = _SAFE_TOKEN.fullmatch
        head = b"#%d %s " % (r.pair, self._client_bytes(r.client))
        # every key bare (one look for the run), else each line decides
        bare = _bare(list(map(_SECOND, r.commands)))
        if bare and self._whole_run(r, append, head, bulks_plain):
            return
        last_latency = _UNSET
        ms = b""
        last_reply = _UNSET
        text = None
        for args, reply, latency in zip(r.commands, r.replies, r.latencies, strict=True):
            if reply is not last_reply:  # pipelined +OK replies are one object
                last_reply = reply
                # a checked bulk reply is shown as it is, quoted: no call for the common GET
                text = b'"' + reply + b'"' if bulks_plain and type(reply) is bytes else (
                    reply_text(reply, lim, bulks_plain))
            if text is None:
                x = R.RedisExchange(r.pair, r.ts, r.client, tuple(args), reply, latency, False)
                append("\n".join(self.formatter.lines(x)).encode("utf-8", "surrogateescape"))
                continue
            if latency != last_latency:
                last_latency = latency
                ms = _ms_bytes(latency)
            second = args[1]  # bare when it is a simple key, else quoted
            n = len(args)
            if n == 2:
                append((_LINE2 if bare or token(second) else _LINE2Q) % (
                    head, args[0], second, text, ms))
            else:
                append((_LINE if bare or token(second) else _LINEQ) % (
                    head, args[0], second, args[2] if n == 3 else b'" "'.join(args[2:]), text,
                    ms))

    def _whole_run(self, r, append, head: bytes, bulks_plain: bool) -> bool:
        """The common run's lines in one go, C-level maps and joins, no Python per line: every
        key bare, one latency, and its replies one reply (pipelined ``+OK``) or each a checked
        bulk string (pipelined ``GET``). False when the run is not that (``_run`` makes it line
        by line); the caller checked its arguments (``plain_batch``)."""
        commands, replies, latencies = r.commands, r.replies, r.latencies
        n = len(replies)
        if latencies.count(latencies[0]) != n:
            return False
        kinds = r.types()
        first = replies[0]
        if replies.count(first) == n and kinds <= _SCALARS:  # equal replies of one type
            text = self._replies(first, self.max_value, bulks_plain)
            if text is None:
                return False
        elif bulks_plain and kinds == _BYTES_ONLY:
            text = None  # each its own, quoted
        else:
            return False
        # One format for every command when they have as many arguments (a run mostly repeats
        # one command), else each its own; "%" (operator.mod: no method wrapper per call)
        # takes a tuple, and a run's commands may be lists, as the parser gave them.
        sizes = list(map(len, commands))
        size = sizes[0]
        if sizes.count(size) != n:
            shown = map(_mod, map(_ARGS.__getitem__, sizes), map(tuple, commands))
        elif size == 2:  # "name key": a join, no tuple and no format (pipelined GETs)
            shown = map(_SPACED, commands)
        else:
            shown = map(_mod, _repeat(_ARGS[size]), map(tuple, commands))
        ms = _ms_bytes(latencies[0])
        if text is not None:  # one text for all
            after = b" -> %s%s" % (text, ms)
            append(head + (after + b"\n" + head).join(shown) + after)
        else:
            lines = map(_mod, _repeat(b'%s -> "%s"'), zip(shown, replies, strict=True))
            append(head + (ms + b"\n" + head).join(lines) + ms)
        return True

    def _client_bytes(self, client) -> bytes:
        return self._clients.get(client) or remember(
            self._clients, client, str(client).encode("utf-8", "surrogateescape"))
