"""What a recorded connection asked and was answered, and how a replay's answers compare (pure).

``split(conn)`` decodes a connection's streams with the proxy's own decoders
(``RespConversation``, ``HttpConversation``), fed in the order they were captured, into
:class:`Exchanged` items: the request's place in the client stream, a label to show
(``GET user:1``, ``GET /api``: secrets hidden, control bytes escaped) and the reply in a
comparable form. :func:`plan` turns them into the :class:`Request` list a runner sends (every
client byte, cut after each request; secrets the capture masked supplied from ``Secrets``, or
listed as missing) and :func:`compare` holds a replay's exchanges, decoded the same way, against
the recorded ones: ``exact``, ``ignored`` (equal once the ``Rules`` drop volatile values:
command-name globs like ``TIME``/``INFO``, HTTP header names like ``Date``, JSON paths like
``$.id`` or ``$.items[*].ts`` in HTTP bodies), or ``different``, with one line that says how:
``#3 GET user:1: recorded "alice", now (nil)``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import NamedTuple

import attrs

from playground.codec.encoder import encode_command
from playground.codec.values import (
    Attributed,
    BigNumber,
    Error,
    Map,
    Push,
    Set,
    Simple,
    Verbatim,
)
from playground.decode.detect import HTTP, RESP, classify
from playground.decode.httpdecoder import HttpConversation, HttpSwitched, HttpUndecodable
from playground.decode.httpdecoder import HttpExchange as _HttpDone
from playground.decode.redaction import (
    REDACTED,
    SECRET_COMMANDS,
    SECRET_HEADERS,
    mask_preview,
    redact_target,
    secret_values,
)
from playground.decode.respdecoder import (
    Exchange,
    RespConversation,
    redact_command,
    redact_reply,
    secret_parts,
)
from playground.decode.respdecoder import Undecodable as RespUndecodable
from playground.decode.views import escape, quoted
from playground.replay.reassembly import C2S, S2C

MAX_BODY = 1024 * 1024  # bytes of an HTTP body kept for comparison (its size is compared too)
SHOWN = 60  # bytes of a value shown in a difference line
EXACT, IGNORED, DIFFERENT, MISSING = "exact", "ignored", "different", "missing"


class _NoReply:
    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY = _NoReply()  # in a comparison: the request got no reply (None is a RESP nil)
# response headers that frame the message (their values follow the body and the connection)
FRAMING_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive"})


@attrs.frozen
class HttpReply:
    """An HTTP response as compared: status, headers (lower-case names, framing headers left
    out), the body's first ``MAX_BODY`` bytes and its size."""

    status: int
    headers: tuple
    body: bytes
    size: int
    content_type: bytes


class Exchanged(NamedTuple):
    """One request of a connection and its reply: the request is bytes ``[start, end)`` of the
    client stream (0, 0 where the decoding was told not to locate requests); ``args`` (Redis)
    or ``head`` (HTTP: ``(method, target, headers)``) as parsed; ``reply`` a ``codec.values``
    value, an :class:`HttpReply`, or ``NO_REPLY``. A named tuple: one is made per reply."""

    start: int
    end: int
    reply: object
    sent_at: float
    args: tuple = ()
    head: tuple = ()
    expects_reply: bool = True

    @property
    def label(self) -> str:
        """What a difference line calls the request (made only when one is shown)."""
        if self.head:
            return label_http(self.head[0], self.head[1])
        return label_command(self.args)


@attrs.frozen
class Decoded:
    """A connection's streams decoded: ``protocol``, its exchanges in order, and why it cannot
    be compared (``problem``) when it cannot."""

    protocol: str
    exchanges: list
    problem: str | None = None


def protocol_of(client: bytes) -> str:
    return classify(client, final=True) or "hex"


def decode(chunks, protocol: str | None = None) -> Decoded:
    """``chunks`` (``(direction, ts, data)`` in the order they crossed) decoded into exchanges;
    ``protocol`` defaults to what the client's first bytes say."""
    if protocol is None:
        protocol = protocol_of(b"".join(c[2] for c in chunks if c[0] == C2S)[:4096])
    live = Live(protocol)
    last = 0.0
    for direction, ts, data in chunks:
        live.feed(direction, data, ts)
        last = ts
    return live.finish(last)


class Live:
    """A connection decoded as its bytes come: ``feed`` returns how many replies the bytes
    completed (what a runner waits for), ``finish`` the :class:`Decoded` result."""

    def __init__(self, protocol: str, locate: bool = True):
        self.protocol = protocol
        self.locate = locate  # find each request's place in the client stream (a replay's: no)
        self.exchanges: list = []
        self.problem: str | None = None
        self._client_end = 0
        self._server_done = False
        if protocol == RESP:
            self._conv = RespConversation()
            self._event = _resp_event
        elif protocol == HTTP:
            self._conv = HttpConversation(preview=MAX_BODY)
            self._event = _http_event
        else:
            self._conv = None
            self.problem = f"the client speaks {protocol}: only Redis and HTTP replay"

    def feed(self, direction: str, data: bytes, now: float) -> int:
        if self._conv is None:
            return 0
        if direction == C2S:
            self._client_end += len(data)
        return self._events(self._conv.feed(direction, data, now))

    def _events(self, events) -> int:
        out = self.exchanges
        before = len(out)
        for e in events:
            self.problem = self._event(e, out, self.locate) or self.problem
        return sum(1 for x in out[before:] if x.expects_reply) if len(out) > before else 0

    def server_done(self, now: float) -> int:
        """The server closed its side: how many replies that completed (an HTTP response
        delimited by the close)."""
        if self.protocol != HTTP or self._server_done:
            return 0
        self._server_done = True
        return self._events(self._conv.eof(S2C, now))

    def finish(self, now: float) -> Decoded:
        if self.protocol == HTTP:
            self.server_done(now)
            self._events(self._conv.close(now))
            out = self.exchanges
            # each request runs until the next one starts
            self.exchanges = [
                x._replace(start=0 if i == 0 else x.start,
                           end=out[i + 1].start if i + 1 < len(out) else self._client_end)
                for i, x in enumerate(out)]
        elif self._conv is not None:
            self._events(self._conv.close(now))
        return Decoded(self.protocol, self.exchanges, self.problem)


def _resp_event(e, out: list, locate: bool = True) -> str | None:
    if type(e) is Exchange:
        start, end = e.span if locate else (0, 0)
        out.append(Exchanged(start, end, e.reply, e.sent_at, args=e.command,
                             expects_reply=not e.suppressed))
        return None
    if type(e) is RespUndecodable:
        return f"the {'client' if e.direction == C2S else 'server'} stream is not RESP: {e.reason}"
    return None  # pushes are not replies; unanswered commands are sent but have no reply


def _http_event(e, out: list, locate: bool = True) -> str | None:
    if type(e) is _HttpDone and e.request is not None:
        r = e.request
        headers = tuple((k.lower(), v) for k, v in e.response_headers
                        if k.lower() not in FRAMING_HEADERS)
        reply = HttpReply(e.status, headers, e.response_preview, e.response_body_size,
                          e.content_type or b"")
        out.append(Exchanged(r.offset, r.offset, reply, e.request_done or r.started,
                             head=(r.method, r.target, r.headers)))
        return None
    if type(e) is HttpUndecodable:
        return (f"the {'client' if e.direction == C2S else 'server'} stream is not HTTP: "
                f"{e.reason}")
    if type(e) is HttpSwitched:
        return f"the connection switched protocols ({e.how}): not replayed past it"
    return None


# -- labels and values, as a difference line shows them -------------------------------------

_BARE = re.compile(rb"[A-Za-z0-9_.:/\-*@#()]{1,60}")


def label_command(args) -> str:
    """``SET user:1 "alice"``: the command with its secrets hidden, at most 6 arguments."""
    shown = []
    for i, a in enumerate(redact_command(args)[:7]):
        a = a if isinstance(a, bytes) else str(a).encode()
        if i == 0:
            shown.append(escape(a[:SHOWN]).upper())
        elif _BARE.fullmatch(a):
            shown.append(escape(a))
        else:
            shown.append(quoted(a, SHOWN))
    if len(args) > 7:
        shown.append(f"... ({len(args)} arguments)")
    return " ".join(shown)


def label_http(method: bytes, target: bytes) -> str:
    """``GET /cb?access_token=(redacted)``: a credential query (or fragment) parameter's value
    (``redaction.SECRET_PARAMS``), as the proxy's sinks show it: a capture made with
    ``--no-redact`` holds it in clear."""
    return f"{escape(method)} {escape(redact_target(target)[:200])}"


def describe(v) -> str:
    """A reply the way redis-cli shows it, on one line and bounded; an HTTP reply as its status
    and body."""
    if v is NO_REPLY:
        return "(no reply)"
    if v is None:
        return "(nil)"
    if isinstance(v, HttpReply):
        return f"{v.status} {_body_text(v)}"
    if isinstance(v, bytes):
        return quoted(v, SHOWN)
    if isinstance(v, bool):
        return "(true)" if v else "(false)"
    if isinstance(v, int):
        return f"(integer) {v}"
    if isinstance(v, float):
        return f"(double) {v!r}"
    if isinstance(v, Simple):
        return "+" + escape(v.value[:SHOWN])
    if isinstance(v, Error):
        return "-" + escape(v.value[:SHOWN])
    if isinstance(v, BigNumber):
        return f"(big number) {v.value}"
    if isinstance(v, Verbatim):
        return quoted(v.text, SHOWN)
    if isinstance(v, Attributed):
        return describe(v.value)
    if isinstance(v, Map):
        inner = ", ".join(f"{describe(k)}: {describe(x)}" for k, x in v.items[:4])
        return "{" + inner + (", ..." if len(v.items) > 4 else "") + "}"
    if isinstance(v, (Set, Push)):
        v = v.items
    if isinstance(v, (list, tuple)):
        inner = ", ".join(describe(x) for x in v[:4])
        return f"[{inner}{', ...' if len(v) > 4 else ''}] ({len(v)} items)" if len(v) > 4 \
            else f"[{inner}]"
    return escape(repr(v)[:SHOWN].encode())


def _body_text(r: HttpReply) -> str:
    if not r.size:
        return "(empty body)"
    return f"{quoted(r.body, SHOWN)} ({r.size} bytes)"


# -- the requests to send ----------------------------------------------------------------------

@attrs.frozen
class Request:
    """Bytes to send; ``expects_reply``: the runner waits for one reply before the next."""

    data: bytes
    sent_at: float
    expects_reply: bool


@attrs.frozen
class Secrets:
    """What the capture masked and the command line supplies: ``auth`` for ``AUTH`` and
    ``HELLO ... AUTH`` passwords; ``headers`` (``((name, value), ...)``) set on every HTTP
    request, replacing a header of that name; ``host``: the ``Host`` header's new value."""

    auth: bytes | None = None
    headers: tuple = ()
    host: bytes | None = None


def masked(value: bytes) -> bool:
    """A secret the capture hid: tcpplay's pcap fills it with ``*``, its JSON says
    ``(redacted)``."""
    return value == REDACTED or (bool(value) and value.strip(b"*") == b"")


def plan(decoded: Decoded, client: bytes, secrets: Secrets) -> tuple[list, list]:
    """``(requests, missing)``: every byte of ``client`` cut into requests (what follows the
    last answered one is one more request that expects nothing), with secrets supplied, and a
    line for each secret that is masked and not supplied (never the secret itself)."""
    requests: list = []
    missing: list = []
    pos = 0
    for n, x in enumerate(decoded.exchanges, 1):
        data = client[pos:x.end]
        if decoded.protocol == RESP:
            data = _resp_secrets(n, x, data, x.start - pos, secrets, missing)
        else:
            data = _http_secrets(n, x, data, secrets, missing)
        requests.append(Request(data, x.sent_at, x.expects_reply))
        pos = x.end
    if pos < len(client):
        last = decoded.exchanges[-1].sent_at if decoded.exchanges else 0.0
        requests.append(Request(client[pos:], last, False))
    return requests, missing


def _resp_secrets(n, x: Exchanged, data: bytes, frame_at: int, secrets: Secrets,
                  missing: list) -> bytes:
    name = x.args[0] if x.args else b""
    if type(name) is not bytes or name.upper() not in SECRET_COMMANDS:
        return data
    parts = [(i, skip) for i, skip in secret_parts(x.args) if masked(x.args[i][skip:])]
    if not parts:
        return data
    name = x.args[0].upper()
    if name not in (b"AUTH", b"HELLO") or secrets.auth is None:
        how = "give --auth" if name in (b"AUTH", b"HELLO") else "it cannot be supplied"
        missing.append(f"#{n} {x.label}: the capture masks its password; {how}")
        return data
    args = list(x.args)
    for i, skip in parts:
        args[i] = args[i][:skip] + secrets.auth
    return data[:max(0, frame_at)] + encode_command(*args)


_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _http_secrets(n, x: Exchanged, data: bytes, secrets: Secrets, missing: list) -> bytes:
    method, target, headers = x.head
    supplied = {k.lower() for k, _ in secrets.headers}
    for k, v in headers:
        if k.lower() in SECRET_HEADERS and masked(v) and k.lower() not in supplied:
            missing.append(f"#{n} {x.label}: the capture masks its {escape(k)} header; give "
                           f"--header '{escape(k)}: ...'")
    if not secrets.headers and secrets.host is None:
        return data
    lead = len(data) - len(data.lstrip(b"\r\n"))
    m = _HEAD_END.search(data, lead)
    if m is None:
        return data
    lines = data[lead:m.start()].split(b"\n")
    set_headers = list(secrets.headers)
    if secrets.host is not None:
        set_headers.append((b"Host", secrets.host))
    names = {k.lower() for k, _ in set_headers}
    kept = [lines[0].rstrip(b"\r")]
    dropping = False
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the previous header
            if not dropping:
                kept.append(line)
            continue
        dropping = line.partition(b":")[0].strip().lower() in names
        if not dropping:
            kept.append(line)
    kept += [k + b": " + v for k, v in set_headers]
    return data[:lead] + b"\r\n".join(kept) + b"\r\n\r\n" + data[m.end():]


# -- comparing ---------------------------------------------------------------------------------

@attrs.frozen
class Rules:
    """What ``--ignore`` says is volatile: globs on Redis command names (``TIME``, ``INFO``,
    ``CLIENT*``) that also match HTTP response header names (``Date``, ``X-Request-*``),
    and JSON paths (``$.id``, ``$.items[*].ts``, ``$..ts``) in HTTP bodies."""

    names: tuple = ()
    json_paths: tuple = ()

    @classmethod
    def parse(cls, values) -> Rules:
        """From ``--ignore`` values (each one or several, comma-separated); ``ValueError``
        names a rule that cannot be read."""
        names, paths = [], []
        for value in values:
            for rule in filter(None, (r.strip() for r in value.split(","))):
                if rule.startswith("$"):
                    paths.append(_json_path(rule))
                else:
                    names.append(rule.lower())
        return cls(tuple(names), tuple(paths))

    def name(self, name: bytes | str) -> bool:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        name = name.lower()
        return any(fnmatch.fnmatchcase(name, rule) for rule in self.names)


_PATH_STEP = re.compile(r"\.\.([A-Za-z0-9_\-]+|\*)|\.([A-Za-z0-9_\-]+|\*)|\[(\*|\d+)\]"
                        r"|\[['\"]([^'\"]+)['\"]\]")


def _json_path(rule: str) -> tuple:
    steps = []
    pos = 1
    while pos < len(rule):
        m = _PATH_STEP.match(rule, pos)
        if m is None:
            raise ValueError(f"{rule!r}: cannot read the JSON path at {rule[pos:]!r} "
                             f"(e.g. $.id, $.items[*].ts, $..ts)")
        deep, key, index, quoted_key = m.groups()
        if deep is not None:
            steps.append(("..", deep))
        elif key is not None:
            steps.append((".", key))
        elif index is not None:
            steps.append(("[]", index))
        else:
            steps.append((".", quoted_key))
        pos = m.end()
    if not steps:
        raise ValueError(f"{rule!r}: a JSON path names something below $ (e.g. $.id)")
    return tuple(steps)


_GONE = object()


def drop_paths(doc, paths) -> object:
    """``doc`` (parsed JSON) with whatever each path names taken out."""
    for path in paths:
        doc = _drop(doc, path)
    return doc


def _drop(node, path):
    if not path:
        return _GONE
    (kind, key), rest = path[0], path[1:]
    if kind == "..":  # the key at this level, then the same search in every child
        if isinstance(node, dict):
            node = _drop(node, ((".", key),) + rest)
            return {k: _drop(v, path) for k, v in node.items()}
        if isinstance(node, list):
            return [_drop(v, path) for v in node]
        return node
    if isinstance(node, dict) and kind == ".":
        out = {}
        for k, v in node.items():
            if key == "*" or k == key:
                v = _drop(v, rest)
            if v is not _GONE:
                out[k] = v
        return out
    if isinstance(node, list) and kind == "[]":
        out = []
        for i, v in enumerate(node):
            if key == "*" or str(i) == key:
                v = _drop(v, rest)
            if v is not _GONE:
                out.append(v)
        return out
    return node


def _json_diff(a, b, path: str = "$") -> tuple | None:
    """The first place two JSON documents differ: ``(path, recorded, now)``."""
    if type(a) is not type(b):
        return path, a, b
    if isinstance(a, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return f"{path}.{k}", a.get(k, _GONE), b.get(k, _GONE)
            d = _json_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            d = _json_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        if len(a) != len(b):
            return f"{path} length", len(a), len(b)
        return None
    return None if a == b else (path, a, b)


def _json_text(v) -> str:
    if v is _GONE:
        return "(absent)"
    return escape(json.dumps(v, ensure_ascii=False)[:SHOWN].encode())


@attrs.frozen
class Outcome:
    """One request's verdict; ``line`` says how it differs (None when it does not)."""

    number: int
    label: str  # the request, as difference lines name it ("" for an exact reply)
    verdict: str  # exact | ignored | different | missing
    line: str | None = None


def compare(recorded: list, now: list, rules: Rules) -> list[Outcome]:
    """Each recorded exchange against the replay's exchange of the same place."""
    out = []
    for n, x in enumerate(recorded, 1):
        new = now[n - 1] if n - 1 < len(now) else None
        reply = NO_REPLY if new is None else new.reply
        if new is None and x.expects_reply:
            out.append(Outcome(n, x.label, MISSING, f"#{n} {x.label}: recorded "
                               f"{describe(_shown(x.reply, x, new))}, now (no reply)"))
            continue
        if reply == x.reply:
            out.append(Outcome(n, "", EXACT))
            continue
        if isinstance(x.reply, HttpReply) and isinstance(reply, HttpReply):
            secrets = secret_values(*(e.head[2] for e in (x, new) if e is not None and e.head))
            how = _http_difference(_masked(x.reply, secrets), _masked(reply, secrets), rules)
            if how is None and secrets and _http_difference(x.reply, reply, rules):
                how = "body: differs where it echoes the request's credentials (not shown)"
        elif x.args and rules.name(x.args[0]):
            how = None
        else:
            how = (f"recorded {describe(_shown(x.reply, x, new))}, "
                   f"now {describe(_shown(reply, x, new))}")
        if how is None:
            out.append(Outcome(n, x.label, IGNORED))
        else:
            out.append(Outcome(n, x.label, DIFFERENT, f"#{n} {x.label}: {how}"))
    return out


def _shown(reply, recorded: Exchanged, replayed: Exchanged | None):
    """``reply`` as a difference line shows it: a password the command carried (the recorded
    one, or the one sent: ``--auth``) hidden where the reply echoes it (``-ERR unknown command
    'AUTH', with args beginning with: 'pw'``), and ``CONFIG GET``'s secret values."""
    for x in (recorded, replayed):
        if x is not None and x.args:
            reply = redact_reply(x.args, reply)
    return reply


def _masked(reply: HttpReply, secrets: list) -> HttpReply:
    """``reply`` with its body's copies of the request's credentials (an echo such as
    httpbin's ``/headers``: the one ``--header`` supplied too) as ``(redacted)``."""
    if not secrets or not reply.body:
        return reply
    return attrs.evolve(reply, body=mask_preview(reply.body, secrets, reply.size))


def _http_difference(a: HttpReply, b: HttpReply, rules: Rules) -> str | None:
    if a.status != b.status:
        return f"status: recorded {a.status}, now {b.status}"
    ha = {k: v for k, v in a.headers if not rules.name(k) and k not in SECRET_HEADERS}
    hb = {k: v for k, v in b.headers if not rules.name(k) and k not in SECRET_HEADERS}
    for k in list(ha) + [k for k in hb if k not in ha]:
        if ha.get(k) != hb.get(k):
            def show(v):
                return "(absent)" if v is None else quoted(v, SHOWN)
            return f"header {escape(k)}: recorded {show(ha.get(k))}, now {show(hb.get(k))}"
    if a.body == b.body and a.size == b.size:
        return None
    if b"json" in a.content_type.lower() and a.size <= MAX_BODY and b.size <= MAX_BODY:
        try:
            ja, jb = json.loads(a.body), json.loads(b.body)
        except ValueError:
            pass
        else:
            d = _json_diff(drop_paths(ja, rules.json_paths), drop_paths(jb, rules.json_paths))
            if d is None:
                return None
            path, x, y = d
            return f"body {path}: recorded {_json_text(x)}, now {_json_text(y)}"
    return f"body: recorded {_body_text(a)}, now {_body_text(b)}"
