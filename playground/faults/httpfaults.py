"""HTTP-aware faults of one connection as a sans-I/O core: both directions' bytes in, actions out.

``HttpFaults`` frames the client's requests and the server's responses with the decoder's own
HTTP/1.x framing (``playground.decode.httpdecoder.HttpConversation`` with ``marks``: where each
head and message ends) and applies the ``http`` toxics that match a request (``method`` glob on
the upper-cased method, ``path`` glob on the target, or on its path without the query; ``nth``:
only the Nth match, 0 = every match; toxicity rolled once per connection):

- ``status``: the request is not forwarded; the client gets a response with that status (a
  ``Retry-After`` header when ``retry_after`` > 0, ``Content-Length`` and a short text body naming
  the fault; ``Connection: close`` and then a close when the request did not keep the connection
  alive) at the request's place in the response order: pipelined requests keep their order.
- ``delay``: the response is held from its first byte until ``delay`` ms after it; later
  responses wait behind it.
- ``slow_headers`` / ``slow_body``: the response's head (its body) goes out at ``rate`` bytes/s,
  in pieces of a tenth of a second; the rest passes as it comes.
- ``cut``: the pair is closed (FIN) once ``cut_after`` bytes of the response body are out.

Bytes pass unchanged otherwise (a request is forwarded as its bytes arrive; a response goes out
as it arrives unless a fault, or one before it, holds it). On what it cannot frame either way
(not HTTP, a response nobody asked for), on a request that may switch protocols (``Upgrade``,
``CONNECT``), or when more than ``max_held`` bytes would be held, the core stops acting for the
pair: it says so once (a ``Note``), what it holds goes out in order, then bytes pass unchanged.

Actions are ``playground.faults.respfaults``' (``ToServer``, ``ToClient``, ``FinToServer``,
``FinToClient``, ``Note``) and ``playground.faults.toxics``' (``Wait(at)``: call ``tick``;
``Close``). An injected response is a ``ToClient`` of its own naming the toxic (``injected``), so
are the bytes a fault held back or paced (``affected``). Pure: no Twisted, no clock.
"""

from __future__ import annotations

import random
from collections import deque
from http import HTTPStatus

from playground.decode.httpdecoder import (
    HttpConversation,
    HttpMark,
    HttpRaw,
    HttpRequest,
    HttpSwitched,
    HttpUndecodable,
    header,
)
from playground.decode.redaction import redact_target
from playground.faults.model import ConnectionToxics, Toxic
from playground.faults.respfaults import FinToClient, FinToServer, Note, ToClient, ToServer
from playground.faults.toxics import Close, Wait

__all__ = ["MAX_HELD", "HttpFaults", "describe", "injected_response"]

MAX_HELD = 8 * 1024 * 1024
_C2S, _S2C = "c2s", "s2c"  # the directions, as playground.proxy.observer names them
# what the client's bytes are doing: in a head (undecided), in a forwarded or a swallowed request
_HEAD, _FORWARD, _SWALLOW = range(3)


def describe(request: HttpRequest) -> str:
    """A request for a log line: method and target, escaped, short; a credential query (or
    fragment) parameter's value (``redaction.SECRET_PARAMS``) as ``(redacted)``: the log is no
    place for it, whatever ``--no-redact`` says of the traffic's sinks."""
    text = (request.method + b" " + redact_target(request.target)).decode("latin-1")
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 80 else text[:77] + "..."


def keeps_alive(request: HttpRequest) -> bool:
    """Whether the request asked to keep the connection open (HTTP/1.1 unless ``close``)."""
    connection = (header(request.headers, b"connection") or b"").lower()
    tokens = {t.strip() for t in connection.split(b",")}
    if request.version == b"HTTP/1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


def injected_response(toxic: Toxic, request: HttpRequest) -> bytes:
    """The response a ``status`` fault answers ``request`` with."""
    status = int(toxic.attributes["status"])
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Injected"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    body = b""
    if status not in (204, 304):  # no body for these (make_toxic allows only 200-599)
        body = f"{status} {phrase}: injected by tcpplay fault {toxic.name}\n".encode("ascii")
        lines.append("Content-Type: text/plain; charset=utf-8")
        lines.append(f"Content-Length: {len(body)}")
    if toxic.attributes["retry_after"]:
        lines.append(f"Retry-After: {toxic.attributes['retry_after']}")
    alive = keeps_alive(request)
    if not alive:
        lines.append("Connection: close")
    elif request.version == b"HTTP/1.0":
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head if request.method == b"HEAD" else head + body


class _Slot:
    """One response the client waits for, in order: a forwarded request's or an injected one."""

    __slots__ = ("toxic", "action", "request", "data", "head", "done", "first", "sent", "paced",
                 "close")

    def __init__(self, toxic: Toxic | None, request: HttpRequest, data: bytes = b""):
        self.toxic = toxic
        self.action = toxic.attributes["action"] if toxic is not None else None
        self.request = request
        self.data = bytearray(data)  # bytes read and not yet sent
        self.head = -1  # bytes of the response up to the end of its final head (-1: not yet)
        self.done = False  # the whole response is read
        self.first = -1.0  # when its first byte was read (-1: not yet)
        self.sent = 0  # bytes of the response sent
        self.paced = -1.0  # when the paced part (slow_headers/slow_body) started
        self.close = False  # close the pair once the response is out


class HttpFaults(ConnectionToxics):
    """The ``http`` toxics of one connection. ``passing`` once it has stopped acting."""

    protocol = "http"

    def __init__(self, rng: random.Random, max_held: int = MAX_HELD):
        super().__init__(rng)
        self.max_held = max_held
        self.passing = False
        self._requests = HttpConversation(marks=True)  # the client's bytes
        self._responses = HttpConversation(marks=True)  # the forwarded requests and the responses
        self._cbuf = bytearray()  # client bytes not yet forwarded or swallowed
        self._cbase = 0  # stream offset of _cbuf[0]
        self._mode = _HEAD
        self._closing = False  # an injected answer closes the pair: the client's bytes are swallowed
        self._sbase = 0  # stream offset of the server's next byte
        self._slots: deque[_Slot] = deque()  # every response the client is owed, in order
        self._awaiting: deque[_Slot] = deque()  # the forwarded ones not completely read
        self._held = 0  # bytes in the slots
        self._tail = bytearray()  # server bytes after the core stopped, behind the slots
        self._server_eof = False
        self._fin_sent = False
        self.closed = False  # the core closed the pair: nothing more goes either way

    def held(self) -> int:
        return len(self._cbuf) + self._held + len(self._tail)

    # -- client -> server ----------------------------------------------------------
    def client_data(self, data: bytes, now: float) -> list:
        if self.closed:
            return []
        if self.passing:
            return [ToServer(data)]
        out: list = []
        forward: list[bytes] = []
        self._cbuf += data
        for event in self._requests.feed(_C2S, data, now):
            kind = type(event)
            if kind is HttpMark:
                self._take(event.offset, forward)
                if self._closing:
                    continue
                if event.kind == "head":
                    if self._request(event.request, forward, out):
                        return self._give_up(out, forward, "the client asked to switch "
                                             "protocols", now)
                elif self._slots and self._slots[-1].close:
                    self._closing = True  # answered, and the client asked to close
                else:
                    self._mode = _HEAD
            elif kind is HttpUndecodable or kind is HttpRaw or kind is HttpSwitched:
                return self._give_up(out, forward, "the client sent what is not HTTP/1.x", now)
        pending = self._requests.pending  # only the one still being read is of use
        if len(pending) > 1 or pending and pending[-1].done is not None:
            del pending[:-1 if pending[-1].done is None else None]
        if self._mode != _HEAD and self._cbuf:
            self._take(self._cbase + len(self._cbuf), forward)
        if forward:
            out.insert(0, ToServer(b"".join(forward)))
            self._server_view(forward, out, now)
        if self.held() > self.max_held:
            return self._give_up(out, [], "more than max_held bytes held", now)
        out.extend(self._release(now))
        return out

    def _take(self, upto: int, forward: list) -> None:
        """The client's bytes up to stream offset ``upto`` are forwarded or swallowed as the
        mode says (a head's bytes wait for its decision)."""
        n = upto - self._cbase
        if n <= 0:
            return
        if self._mode != _SWALLOW:
            forward.append(bytes(self._cbuf[:n]))
        del self._cbuf[:n]
        self._cbase = upto

    def _request(self, request: HttpRequest, forward: list, out: list) -> bool:
        """A request head was read (its bytes are ``forward``'s last piece): decide what
        happens to it. True when the connection may switch protocols."""
        toxic = self._match(request)
        action = toxic.attributes["action"] if toxic is not None else None
        if action == "status":
            forward.pop()  # the head: the server never sees it
            reply = injected_response(toxic, request)
            slot = _Slot(toxic, request, reply)
            slot.done = True
            slot.close = not keeps_alive(request)
            self._slots.append(slot)
            self._held += len(reply)
            self._mode = _SWALLOW
            out.append(Note(toxic, f"answered {toxic.attributes['status']} for "
                                   f"{describe(request)}"))
            return False
        self._mode = _FORWARD
        slot = _Slot(toxic, request)
        self._slots.append(slot)
        self._awaiting.append(slot)
        if action is not None:
            a = toxic.attributes
            text = {"delay": f"delays the response of {describe(request)} by {a['delay']} ms",
                    "slow_headers": f"sends the head of the response of {describe(request)} at "
                                    f"{a['rate']} B/s",
                    "slow_body": f"sends the body of the response of {describe(request)} at "
                                 f"{a['rate']} B/s",
                    "cut": f"cuts the response of {describe(request)} after {a['cut_after']} "
                           f"body bytes"}[action]
            out.append(Note(toxic, text))
        return request.method == b"CONNECT" or header(request.headers, b"upgrade") is not None

    def _match(self, request: HttpRequest) -> Toxic | None:
        if not self.toxics:
            return None
        method = request.method.decode("latin-1").upper()
        target = request.target.decode("latin-1")
        path = target.partition("?")[0]
        for toxic in self.toxics:
            glob, path_glob = toxic.globs["method"], toxic.globs["path"]  # None: "*"
            if glob is not None and glob(method) is None:
                continue
            if path_glob is not None and path_glob(path) is None and path_glob(target) is None:
                continue
            if self._counts(toxic):
                return toxic
        return None

    def _server_view(self, forward: list, out: list, now: float) -> None:
        """The response framing sees the requests the server got (a HEAD has no body)."""
        for event in self._responses.feed(_C2S, b"".join(forward), now):
            if type(event) is HttpUndecodable:
                self._give_up(out, [], "the client sent what is not HTTP/1.x", now)
                return

    def client_eof(self, now: float) -> list:
        """The client's FIN: what it sent of an unfinished request goes out as it is, then the
        FIN."""
        out: list = []
        if self.closed:
            return out
        if self._cbuf and self._mode != _SWALLOW:
            out.append(ToServer(bytes(self._cbuf)))
        self._cbuf.clear()
        self.passing = True
        out.append(FinToServer())
        out.extend(self._release(now))
        return out

    # -- server -> client ----------------------------------------------------------
    def server_data(self, data: bytes, now: float) -> list:
        if self.closed:
            return []
        if self.passing and not self._slots and not self._tail:
            return [ToClient(data)]
        if self.passing:
            self._tail += data
            return self._release(now)
        out: list = []
        pos = 0
        base = self._sbase
        self._sbase += len(data)
        for event in self._responses.feed(_S2C, data, now):
            kind = type(event)
            if kind is HttpMark:
                end = event.offset - base
                if not self._fill(data[pos:end], now):
                    return self._give_up(out, [], "the server sent a response nobody asked "
                                         "for", now, rest=data[pos:])
                pos = end
                if not self._awaiting:
                    return self._give_up(out, [], "the server sent a response nobody asked "
                                         "for", now, rest=data[pos:])
                slot = self._awaiting[0]
                if event.kind == "head":
                    slot.head = slot.sent + len(slot.data)
                else:
                    slot.done = True
                    self._awaiting.popleft()
            elif kind is HttpUndecodable or kind is HttpRaw or kind is HttpSwitched:
                return self._give_up(out, [], "the server sent what is not HTTP/1.x", now,
                                     rest=data[pos:])
        if pos < len(data) and not self._fill(data[pos:], now):
            return self._give_up(out, [], "the server sent a response nobody asked for", now,
                                 rest=data[pos:])
        if self.held() > self.max_held:
            return self._give_up(out, [], "more than max_held bytes held", now)
        out.extend(self._release(now))
        return out

    def _fill(self, chunk: bytes, now: float) -> bool:
        """``chunk`` belongs to the response being read; False when none is awaited."""
        if not chunk:
            return True
        if not self._awaiting:
            return False
        slot = self._awaiting[0]
        if slot.first < 0:
            slot.first = now
        slot.data += chunk
        self._held += len(chunk)
        return True

    def server_eof(self, now: float) -> list:
        """The server's FIN: a response running to the close is complete; the FIN reaches the
        client after every held response (the ones still awaited will not come)."""
        self._server_eof = True
        if self.closed:
            return []
        self._no_more_responses()
        return self._release(now)

    def tick(self, now: float) -> list:
        return [] if self.closed else self._release(now)

    def forget(self, name: str, now: float) -> list:
        """Toxic ``name`` was removed: the responses it delays, paces or would cut go on
        unhindered (what they hold is due now); an answer it injected stays."""
        for slot in self._slots:
            if slot.toxic is not None and slot.toxic.name == name and slot.action != "status":
                slot.action = None
        return self.tick(now)

    def _release(self, now: float) -> list:
        out: list = []
        pending: list[bytes] = []
        slots = self._slots
        while slots:
            slot = slots[0]
            if slot.action == "status" and slot.data:  # an injected answer: an action of its own
                if pending:
                    out.append(ToClient(b"".join(pending)))
                    pending = []
                out.append(ToClient(bytes(slot.data), slot.toxic))
                self._held -= len(slot.data)
                slot.data.clear()
            if slot.action is None or slot.action == "status":
                wait = self._send(slot, now, pending)
            else:  # bytes a fault holds back: an action of their own, naming it
                if pending:
                    out.append(ToClient(b"".join(pending)))
                    pending = []
                own: list[bytes] = []
                wait = self._send(slot, now, own)
                if own:
                    out.append(ToClient(b"".join(own), affected=slot.toxic))
            if wait is not None:
                if pending:
                    out.append(ToClient(b"".join(pending)))
                out.append(wait)
                return out
            if not slot.done:
                break
            slots.popleft()
            if slot.close:
                if pending:
                    out.append(ToClient(b"".join(pending)))
                out.append(Close(slot.toxic))
                self.passing = self.closed = True
                slots.clear()
                return out
        if not slots and self._tail:
            pending.append(bytes(self._tail))
            self._tail.clear()
        if pending:
            out.append(ToClient(b"".join(pending)))
        if self._server_eof and not slots and not self._fin_sent:
            self._fin_sent = True
            out.append(FinToClient())
        return out

    def _send(self, slot: _Slot, now: float, pending: list) -> Wait | None:
        """Move what ``slot`` may send now into ``pending``; a ``Wait`` when it must wait."""
        while slot.data:
            action = slot.action
            if action is None or action == "status" or self.passing:
                n = len(slot.data)
            elif action == "delay":
                until = slot.first + slot.toxic.attributes["delay"] / 1000
                if until > now:
                    return Wait(until)
                n = len(slot.data)
            elif action == "cut":
                n = self._cut(slot, pending)
            else:
                n = self._paced(slot, now)
                if type(n) is Wait:
                    return n
            if n <= 0:
                return None
            pending.append(bytes(slot.data[:n]))
            del slot.data[:n]
            slot.sent += n
            self._held -= n
        return None

    def _cut(self, slot: _Slot, pending: list) -> int:
        """``cut``: the bytes up to ``cut_after`` of the body; past them, the pair closes."""
        if slot.head < 0:
            return len(slot.data)
        limit = slot.head + int(slot.toxic.attributes["cut_after"])
        n = min(len(slot.data), max(0, limit - slot.sent))
        if slot.sent + n < limit or len(slot.data) == n and slot.done:
            return n  # not there yet, or the whole response is shorter
        pending.append(bytes(slot.data[:n]))
        slot.sent += n
        self._held -= len(slot.data)
        slot.data.clear()
        slot.done = slot.close = True  # the rest is never sent
        self._awaiting.clear()
        self.passing = True
        return 0

    def _paced(self, slot: _Slot, now: float):
        """``slow_headers``/``slow_body``: how many bytes may go now (a ``Wait`` if none). The
        paced part (the head; the body) goes at ``rate`` bytes/s, in pieces of a tenth of a
        second; the bytes before it go at once."""
        rate = slot.toxic.attributes["rate"]
        sent, available = slot.sent, len(slot.data)
        if slot.action == "slow_headers":
            first, last = 0, (slot.head if slot.head >= 0 else None)
        elif slot.head < 0:
            return available  # the body has not started: all of it is head
        else:
            first, last = slot.head, None
        if sent < first:
            return min(available, first - sent)
        if not rate or last is not None and sent >= last:
            return available
        if slot.paced < 0:
            slot.paced = now
        piece = max(1, int(rate) // 10)
        done = sent - first
        allowed = int((now - slot.paced) * rate + 1e-6) + piece - done
        if allowed <= 0:
            return Wait(slot.paced + done / rate)
        n = min(available, allowed)
        return n if last is None else min(n, last - sent)

    def _give_up(self, out: list, forward: list, why: str, now: float,
                 rest: bytes = b"") -> list:
        """Stop acting: the client's bytes not yet handled go to the server, what is held to
        the client in order (delays and rates cancelled), then bytes pass unchanged."""
        first = not self.passing
        self.passing = True
        if self._cbuf:
            forward.append(bytes(self._cbuf))
            self._cbuf.clear()
        if forward:
            out.append(ToServer(b"".join(forward)))
        self._tail += rest
        self._no_more_responses()
        if first:
            out.append(Note(None, f"HTTP faults stop on this pair: {why}; bytes pass unchanged"))
        out.extend(self._release(now))
        return out

    def _no_more_responses(self) -> None:
        """The responses still awaited will not be read as responses: they are complete."""
        for slot in self._awaiting:
            slot.done = True
        self._awaiting.clear()
