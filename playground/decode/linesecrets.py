"""Credentials in the text and hex views, whatever the detector decided (pure: no Twisted, no clock).

The RESP and HTTP decoders find the secrets in what they parse. When a stream is shown as text
lines or as a hexdump instead (detection guessed so, ``--decode text|hex``, or a decoder gave up
on a direction), the same secrets must not show either. ``LineSecrets`` looks at the lines of one
direction and gives the byte ranges of

* the passwords of a Redis inline command (``AUTH``, ``HELLO ... AUTH``, ``MIGRATE ... AUTH``,
  ``CONFIG SET requirepass|masterauth``, ``ACL SETUSER`` rules...), found by the RESP decoder's
  own ``respdecoder.secret_ranges`` on the line split as Redis splits it;
* the value of a credential HTTP header (``redaction.SECRET_HEADERS``: ``Authorization``,
  ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``X-Api-Key``...) and of its folded
  continuation lines;
* the values of credential URL parameters (a query's or a fragment's: ``redaction.query_secrets``)
  in a request line (``METHOD target HTTP/x``, however blank-separated; with words after the
  version, or HTTP/0.9's ``GET /path`` with none, or words split by a tab, a VT or an FF: the
  HTTP decoder rejects those and its hex view shows them; a line cut in its target hides its
  rest) and in a URL header's value
  (``redaction.URL_HEADERS``: ``Referer``, ``Location``...; a line cut in its query hides its
  rest);
* the rest of a line cut at the line bound whose beginning carried one of these;
* the same passwords in a Redis command sent as an array of bulk strings (redis-cli, redis-py:
  the command's name alone on its line, each argument on the line after its ``$length``), and
  the value after a password parameter's name in a ``CONFIG GET`` answer (RESP2 or RESP3).

A line is a secret's line or not from its beginning: ``pending(tail)`` says whether an incomplete
line may still turn out to be one (its first word is, or may grow into, one of the names above),
so only such a tail is held back (from the pcap, and from the hex view), never ordinary traffic.

``StreamMask`` is the hex view's side: bytes in, the same bytes out with each secret overwritten
by ``*`` (lengths and offsets kept), minus a held tail. ``redact(line, ranges)`` is the text
view's: each range replaced by ``(redacted)``, as the decoders show it.
"""

from __future__ import annotations

import re

from playground.codec.inline import split_inline
from playground.decode.httpdecoder import (
    folded_value,
    is_token,
    request_line,
    secret_value,
    url_value,
)
from playground.decode.redaction import (
    REDACTED,
    SECRET_COMMANDS,
    SECRET_CONFIG,
    SECRET_HEADERS,
    URL_HEADERS,
    has_params,
    params_start,
    query_secrets,
)
from playground.decode.respdecoder import secret_parts, secret_ranges
from playground.decode.views import LineView

MASK = b"*"

# the parameters whose value is a password (CONFIG SET/GET, SENTINEL CONFIG SET/GET, SENTINEL SET)
_SECRET_PARAMS = SECRET_CONFIG | {b"auth-pass"}
# first words a secret's line starts with (lower case), and the word of an incomplete line
_NAMES = tuple({n.lower() for n in SECRET_COMMANDS} | SECRET_HEADERS | _SECRET_PARAMS)
# ... and those of a line looked at for a query (``URL_HEADERS``: ``_request_line``)
_HELD_NAMES = _NAMES + tuple(URL_HEADERS)
_BULK_LEN = re.compile(rb"\$(\d{1,10})\r?\n")  # a bulk string's length line, whole
_ELEMENTS = b"$=!+:_,#("  # the type bytes of RESP strings and scalars (``_refused``)
_BLANK = re.compile(rb"[ \t\x0b\x0c\r]")  # what ends a request target
_KEEP = 64  # bytes kept of each argument of an array being followed (names, rules)
_WORD = re.compile(rb"[^ \t\x0b\x0c:]*")
_LEAD = b" \t\r\x0b\x0c"  # what Redis skips before an inline command (a newline ends the line)
_LEAD_QUOTES = _LEAD + b"\"'"



def _names(names) -> bytes:
    """One of ``names``, in any case; the first letters as a class up front keep the search
    fast (a line with none of them is passed over at its first byte), and the names are grouped
    by first letter (a line is tried against the names of its first letter only, not all)."""
    firsts = sorted({n[:1].lower() for n in names})
    groups = [b"[" + f + f.upper() + rb"](?i:" + b"|".join(
        re.escape(n[1:]) for n in sorted(names, key=len, reverse=True) if n[:1].lower() == f)
        + b")" for f in firsts]
    return rb"(?=[" + b"".join(f + f.upper() for f in firsts) + rb"])(?:" + b"|".join(groups) + b")"


# a line start (after optional blanks and quotes) with one of the names, in any case, or with
# a quoted first word holding an escape (``"\x41UTH" pw`` is AUTH to Redis)
_LINE_NAME = (rb"[ \t\r\x0b\x0c\"']*(?:" + _names(_NAMES)
              + rb'|"[^"\r\n]{0,80}\\|-ERR Error in ACL)')
# ... or with a URL header's name (``URL_HEADERS``): searched for instead in a chunk with a ``?``
# or a ``#`` (``has_params``)
_LINE_NAME_Q = _LINE_NAME[:-1] + b"|" + _names(URL_HEADERS) + b")"
# Redis' answer to an ACL SETUSER rule it refuses quotes the rule: ``'<password'``
_ACL_ERROR = re.compile(rb"-ERR Error in ACL SETUSER modifier '[<>#!]")
_AFTER_LF = re.compile(b"\n" + _LINE_NAME)
_AT_START = re.compile(_LINE_NAME)
_AFTER_LF_Q = re.compile(b"\n" + _LINE_NAME_Q)
_AT_START_Q = re.compile(_LINE_NAME_Q)
# a line with a credential parameter that no name starts: a folded line (of a URL header's value,
# maybe unseen) whose first word reaches a ``?`` or a ``#``, or an HTTP/0.9 request line (a
# method, a target in origin form, no version: ``GET /cb?token=``); one pattern, one search
_Q_LINE_AT = re.compile(rb"[ \t]+[!-~]*[?#]|[ \t\r\x0b\x0c]*[!-~]+[ \t\r\x0b\x0c]+/[^\s]*[?#]")
_Q_LINE = re.compile(b"\n(?:" + _Q_LINE_AT.pattern + b")")
# a request line begun, with a query (or a fragment) in its target, and no line end yet (a tail,
# or a line cut at the bound; ``_open_request``): looked for only in a chunk with a ``?`` or a
# ``#`` and no ``HTTP/``
_OPEN_REQUEST = re.compile(rb"[ \t\x0b\x0c]*[!-~]+[ \t]+[^\s]*[?#][^\n]*\Z")


def _to_cut(ranges: list, start: int, cut: int) -> None:
    """A line cut at the bound: its rest is hidden from the last secret value found in it (the
    value may go on past the cut), or from ``start`` when none was (a name may be cut there)."""
    ranges.append((ranges.pop()[0] if ranges else start, cut))


def starts_secret_line(data: bytes, line_start: bool, cut: bool = False) -> bool:
    """May a line that starts in ``data`` (after each line end, and at its first byte when
    ``line_start``) begin with a secret line's first word? A quick, conservative test on a
    whole chunk (one regular-expression search): the lines of a chunk for which it is False
    need not be looked at one by one (an incomplete last line is ``LineSecrets.pending``'s).
    A chunk with a ``?`` or a ``#`` is searched with the URL headers' names too
    (``_LINE_NAME_Q``): the same one search, its request lines (one with a version has an
    ``HTTP/``; ``_open_request``) and the lines of ``_Q_LINE`` looked for after it."""
    if not has_params(data):
        return _AFTER_LF.search(data) is not None or (
            line_start and _AT_START.match(data) is not None)
    return _AFTER_LF_Q.search(data) is not None or (
        line_start and _AT_START_Q.match(data) is not None) or (
        b"HTTP/" in data or _open_request(data, line_start, cut)) or (
        _Q_LINE.search(data) is not None or (line_start and _Q_LINE_AT.match(data) is not None))


def _open_request(data: bytes, line_start: bool, cut: bool) -> bool:
    """Whether the last line of ``data`` may be a request line with a query not ended yet
    (``_OPEN_REQUEST``): from its last line end, or from its first byte when ``line_start``;
    without either, ``data`` continues a line begun before: one line to look at, so yes. With
    ``cut`` (``data`` goes on with a line cut at the bound), a ``?`` or a ``#`` in its first
    line is one to look at too (``LineSecrets._cut_query``)."""
    nl = data.rfind(b"\n")
    if nl < 0 and not line_start:
        return True
    if cut and params_start(data, 0, data.find(b"\n")) >= 0:  # (cut: not line_start, nl >= 0)
        return True  # ... or the rest of a line cut at the bound, with a query (a long target's)
    return _OPEN_REQUEST.match(data, nl + 1) is not None


def _body_end(line: bytes) -> int:
    """The length of ``line`` without its line end."""
    if line[-1:] == b"\n":
        return len(line) - 2 if line[-2:-1] == b"\r" else len(line) - 1
    return len(line)


def _is_name(word: bytes) -> bool:
    """Whether the first word of a line (``_WORD``) is one of ``_NAMES``, quoted or not, or is
    a quoted word holding an escape (``"\\x41UTH" pw`` is AUTH to Redis): a secret's line."""
    return word.strip(b"\"'").lower() in _NAMES or (word[:1] == b'"' and b"\\" in word)


def _command(text: bytes) -> list:
    args = split_inline(text)
    if args is None:  # unbalanced quotes: Redis refuses the line, but it is shown
        args = tuple(text.split())
    return secret_ranges(args, text, 0) if args else []


class LineSecrets:
    """One direction of a line stream: where the credentials are. Feed it every line in order.

    ``resync``: the stream is taken up inside a line whose beginning was not seen (a decoder
    gave up there): the rest of that line is treated as secret."""

    __slots__ = ("_header", "_url", "_open", "_carry", "_args", "_left", "_hide")

    def __init__(self, resync: bool = False):
        self._header = False  # the last line was a credential header (or folded into one)
        # the last line was a URL header's (or folded into one): None if not; 0: no query in
        # its value yet, 1: a query, 2: ... whose line ended in a credential value
        self._url = None
        self._open = resync  # the last piece was cut at the bound: the next continues its line
        self._carry = resync  # ... and its rest is secret
        # an array of bulk strings being followed (a secret command's, or a password parameter
        # and what comes after): the arguments so far (their first bytes), None when there is
        # none; the bytes left of the bulk string in progress (with its CRLF; 0: a length
        # line is expected next) and the part of it to hide (``(skip,)``, or None)
        self._args = None
        self._left = 0
        self._hide = None

    def line(self, data: bytes, partial: bool = False) -> list[tuple[int, int]]:
        """The ranges of ``data`` (one line with its line end, or a piece of a cut line:
        ``partial``) that hold credentials, in order."""
        end = _body_end(data)
        if self._args is not None:
            found = self._bulk(data, partial)
            if found is not None:
                return found
        if self._open:  # the rest of a cut line: secret or not from its beginning
            self._open = partial
            if self._carry:
                self._carry = partial
                return [(0, end)] if end else []
            if has_params(data):  # ... but a long target's or URL's query may begin in it
                return self._cut_query(data[:end], partial)
            return []
        self._open = partial
        text = data[:end]
        if self._header and text[:1] in (b" ", b"\t"):
            start, stop = folded_value(text)
            self._carry = partial
            return [(start, stop)] if stop > start else []
        if text[:1] in (b" ", b"\t") and (self._url is not None or has_params(text)):
            # a URL header's folded line; or one with a query whose header went by unseen
            # (unless it is a request line after blanks)
            ranges = self._request_line(text, partial) if self._url is None else []
            if not ranges:
                ranges = self._url_fold(text, partial)
            if _is_name(_WORD.match(text.lstrip(_LEAD)).group()):
                # ... or, to Redis, an inline command after blanks (``  AUTH pa#ss``)
                self._carry = self._carry or partial
                ranges = sorted(ranges + _command(text))
            return ranges
        self._header = False
        self._url = None
        self._carry = False
        if text[:1] == b"-":
            m = _ACL_ERROR.match(text)
            if m is None:
                return []
            self._carry = partial
            close = text.rfind(b"': ", m.end())
            return [(m.end(), close if close >= 0 else end)]
        word = _WORD.match(text.lstrip(_LEAD)).group()
        if not _is_name(word):
            if has_params(text):  # a request line's or a URL header's query may carry credentials
                return self._request_line(text, partial)
            if word.lower() in URL_HEADERS:  # its query may come in a folded line
                self._url = 0
            return []  # the common case: no secret's line (an escape is decoded first)
        span = secret_value(text)
        if span is not None:
            self._header = True
            self._carry = partial
            return [span] if span[1] > span[0] else []
        if word == text and not partial:  # a name alone: maybe an array's bulk string
            self._args = [word]
            self._left = 0
            return []
        ranges = _command(text)
        self._carry = partial  # a cut line of a secret command: its rest is secret too
        return ranges

    def _request_line(self, text: bytes, partial: bool) -> list:
        """The credential parameter values of ``text`` if it is a request line (a method, a
        target with a ``?`` or a ``#``, a version, maybe more words; or HTTP/0.9's method and
        target; or cut before its end), or of its value if it is a URL header's line
        (``URL_HEADERS``), as the HTTP decoder finds them; a line cut in its target or value
        hides its rest (``_carry``): a name may be cut there too."""
        span = url_value(text)
        if span is not None:
            at, end = span
            value = text[at:end]
            self._carry = partial
            ranges = [(at + start, at + end) for start, end in query_secrets(value)]
            if partial:  # from the last value found (or the query) to the cut
                _to_cut(ranges, at + params_start(value) + 1, len(text))
            self._url = 2 if ranges and ranges[-1][1] == at + len(value) else 1
            return ranges
        words, at, versioned = request_line(text)
        if at < 0 or not has_params(words[1]):
            return []
        target = words[1]
        if not (partial or versioned or (  # ... or HTTP/0.9's (``_Q_LINE``)
                len(words) == 2 and target[:1] == b"/" and is_token(words[0]))):
            return []
        self._carry = partial and len(words) == 2
        ranges = [(at + start, at + end) for start, end in query_secrets(target)]
        if self._carry:  # from the last value found (or the query) to the cut
            _to_cut(ranges, at + params_start(target) + 1, len(text))
        return ranges

    def _cut_query(self, text: bytes, partial: bool) -> list:
        """The rest ``text`` of a line cut at the bound before any ``?`` or ``#`` (a request
        target or a URL header's value longer than the bound): the credential parameter values
        from its first ``?`` or ``#`` to the next blank (or the piece's end: then its rest is
        hidden, as a line cut in its query is)."""
        q = params_start(text)
        m = _BLANK.search(text, q)
        stop = len(text) if m is None else m.start()
        ranges = [(q + start, q + end) for start, end in query_secrets(text[q:stop])]
        if partial and m is None:
            self._carry = True
            _to_cut(ranges, q + 1, len(text))
        return ranges

    def _url_fold(self, text: bytes, partial: bool) -> list:
        """An obsolete folded line of a URL header's value (``self._url``): the credential
        query values in it, as the HTTP decoder finds them in the value joined with a space
        (a name never starts the line; a value the line before ended in goes on to the first
        ``&``); cut, its rest is hidden."""
        start, stop = folded_value(text)
        seg = text[start:stop]
        state = self._url or 0
        if state == 0:
            q = params_start(seg)
            if q < 0:
                self._carry = False
                return []
            ranges = [(start + q + s, start + q + e) for s, e in query_secrets(seg[q:])]
        else:
            ranges = [(start + s - 2, start + e - 2) for s, e in query_secrets(b"?\0" + seg)]
            if state == 2:
                amp = seg.find(b"&")
                lead = start + (len(seg) if amp < 0 else amp)
                if lead > start:
                    ranges.insert(0, (start, lead))
        self._carry = partial
        if partial:  # from the last value found (or the fold's start) to the cut
            _to_cut(ranges, start, len(text))
        self._url = 2 if ranges and ranges[-1][1] >= stop else 1
        return ranges

    def _bulk(self, data: bytes, partial: bool) -> list | None:
        """A line of the array being followed: its secret ranges, or None when the array
        ended before it (the line is then looked at as any other)."""
        left = self._left
        if not left:
            m = _BULK_LEN.fullmatch(data)
            if m is None or partial:
                return self._refused(data, partial)
            self._left = int(m.group(1)) + 2
            self._hide = None
            self._open = False
            return []
        value = min(len(data), left - 2)  # the value's bytes in this piece (not its CRLF)
        skip = 0
        if self._hide is None:  # the bulk string's first piece
            head = data[:max(value, 0)][:_KEEP]
            self._hide = _hidden(self._args, head)
            self._args.append(head)
            skip = self._hide or 0
        hide = self._hide
        self._left = max(0, left - len(data))
        self._open = partial
        return [(skip, value)] if hide is not False and value > skip else []

    def _refused(self, data: bytes, partial: bool) -> list | None:
        """A line of the array being followed that is no bulk string's length: in a secret
        command's, an element Redis refuses ("expected '$'"; the password was sent all the
        same); else the array's end (None: the line is looked at as any other). A one-line
        value (``+pw``, ``:1``) is hidden after its type byte and the array followed on; a
        length Redis does not take (``$10 ``, ``$-1``; the decoder gave up there too) or a
        verbatim string's (``=14``) hides the line after it whole, as a cut secret line's rest
        is. (An array inside is taken for the next command: its elements show.)"""
        kind = data[:1]
        if partial or not kind or kind not in _ELEMENTS or (
                self._args[0].upper() not in SECRET_COMMANDS):
            self._args = None
            return None
        if kind in b"$=!":
            self._args = None
            self._open = self._carry = True
        end = _body_end(data)
        return [(1, end)] if end > 1 else []

    @property
    def cut(self) -> bool:
        """The last piece was cut at the line bound: the next bytes continue its line."""
        return self._open

    @property
    def idle(self) -> bool:
        """No line seen so far makes the next ones secret (no header to fold into, no cut
        secret line to continue, no array of a secret command or parameter to follow)."""
        return (not self._header and not self._carry and self._args is None
                and self._url is None)

    def skip(self, cut: bool | None) -> None:
        """Lines went by that no secret's line can be among (``starts_secret_line`` said so,
        and the state was ``idle``); ``cut``: the last of them was a cut piece (None: there was
        none)."""
        if cut is not None:
            self._open = cut

    def pending(self, tail: bytes) -> bool:
        """May the incomplete line ``tail`` (no line end yet) still turn out to hold a secret?"""
        if not tail:
            return False
        if self._left:  # inside a bulk string of an array being followed
            hide = self._hide
            if hide is None:
                hide = _hidden(self._args, tail[:_KEEP])
            return hide is not False
        if self._args is not None and tail[:1] in _ELEMENTS:  # the array's next element
            return True
        if self._open:  # a cut line's rest: hidden, or with a query begun (``_cut_query``)
            return self._carry or has_params(tail)
        if tail[:1] in (b" ", b"\t") and (
                self._header or self._url is not None or has_params(tail)):
            return True
        if tail[:1] == b"-":  # an error: may it be an ACL rule quoted?
            return _ACL_ERROR.pattern.startswith(tail[:38]) or (
                _ACL_ERROR.match(tail) is not None)
        head = tail.lstrip(_LEAD)
        if head[-1:] == b"\r":  # the line's CR, its LF in the next read: not the word's
            head = head[:-1]
        if not head or head[:1] in (b'"', b"'"):
            return True  # blank so far, or a quoted first word: wait for the line
        word = _WORD.match(head).group()
        if len(word) < len(head):  # the word is complete
            # ... or a request line whose target has a query (``_request_line``)
            word = word.lower()  # ... or a URL header's (``_request_line``)
            return word in _NAMES or (has_params(head) and head[len(word)] in b" \t") or (
                word in URL_HEADERS)
        word = word.lower()
        return any(name.startswith(word) for name in _HELD_NAMES)


def _hidden(args: list, value: bytes) -> int | bool:
    """The next argument ``value`` of an array whose arguments so far are ``args``: False if
    it holds no password, else the bytes of it to show before the password (an ACL rule's
    first byte)."""
    if args[-1].lower() in _SECRET_PARAMS:
        return 0
    name = args[0].upper()
    if name == b"AUTH":  # a user name and a password, or a password: both hidden
        return 0
    if name in SECRET_COMMANDS:
        i = len(args)
        parts = dict(secret_parts([*args, value, b"", b""]))
        if i in parts:
            return parts[i]
    return False


def redact(line: bytes, ranges) -> bytes:
    """``line`` with each range replaced by ``(redacted)``."""
    out = []
    at = 0
    for start, end in sorted(ranges):
        if end <= at:
            continue
        out.append(line[at:max(at, start)])
        out.append(REDACTED)
        at = end
    out.append(line[at:])
    return b"".join(out)


def mask(data: bytes, ranges, base: int = 0) -> bytes:
    """``data`` (whose first byte is at stream offset ``base``) with the stream ``ranges``
    overwritten by ``*``: same length."""
    buf = None
    for start, end in ranges:
        s, e = max(0, start - base), min(len(data), end - base)
        if e > s:
            if buf is None:
                buf = bytearray(data)
            buf[s:e] = MASK * (e - s)
    return data if buf is None else bytes(buf)


class StreamMask:
    """One direction of a raw (hex) view from stream offset ``start``: see the module docstring.

    ``feed(data)`` and ``flush()`` return ``(shown, offset, secrets)``: the bytes to show now
    (secrets masked), the stream offset of their first byte, and the secrets' stream ranges found
    (for the pcap). ``held`` is the stream offset where held-back bytes begin, or None.
    ``resync``: ``start`` may be inside a line (see ``LineSecrets``).
    """

    def __init__(self, start: int = 0, max_line: int = 4096, resync: bool = False):
        self.start = start
        self.next = start  # the stream offset the next fed byte has
        self._view = LineView(max_line)
        self._secrets = LineSecrets(resync)
        self._held = b""
        self._held_at = start

    @property
    def held(self) -> int | None:
        return self._held_at if self._held else None

    def feed(self, data: bytes) -> tuple[bytes, int, list]:
        self.next += len(data)
        found = self._scan(data)
        tail = self._view.tail[1]
        keep = len(tail) if tail and self._secrets.pending(tail) else 0
        return self._out(self._held + data if self._held else data, keep, found)

    def _scan(self, data: bytes) -> list:
        """The secrets of the lines ``data`` completes. Lines are looked at one by one only
        where they may matter: the line in progress (held, or after a header or a cut secret
        line), then the rest of the chunk only if ``starts_secret_line`` says so."""
        view, secrets = self._view, self._secrets
        found = []
        if self._held or not secrets.idle:
            nl = data.find(b"\n")
            if nl < 0 or nl + 1 == len(data):
                return self._found(view.feed(data))
            found = self._found(view.feed(data[:nl + 1]))
            data = data[nl + 1:]
            if not secrets.idle:
                return found + self._found(view.feed(data))
        tail = view.tail[1]  # (an HTTP/0.9 line is whole only with the start of its tail)
        cut = secrets.cut
        if starts_secret_line(tail + data if tail else data, not cut, cut):
            return found + self._found(view.feed(data))
        secrets.skip(view.skip(data))  # the common case: no line to look at
        return found

    def flush(self) -> tuple[bytes, int, list]:
        """Everything held, at the end of the stream."""
        found = self._found(self._view.flush())
        return self._out(self._held, 0, found)

    def _found(self, lines) -> list:
        base = self.start
        out = []
        for line in lines:
            for s, e in self._secrets.line(line.data, line.partial):
                out.append((base + line.offset + s, base + line.offset + e))
        return out

    def _out(self, data: bytes, keep: int, found: list) -> tuple[bytes, int, list]:
        at = self._held_at
        if keep:
            # the held tail may have begun in a chunk already shown (its first word did not
            # look like a secret line's yet: ``G`` of a request line): what is left of it
            keep = min(keep, len(data))
            self._held = data[len(data) - keep:]
            data = data[:len(data) - keep]
        else:
            self._held = b""
        self._held_at = at + len(data)
        return (mask(data, found, at) if found else data), at, found
