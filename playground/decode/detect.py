"""Guess a connection's protocol from its first bytes: RESP, HTTP/1.x, line text, or binary.

Pure (no Twisted, no clock). The proxy has already forwarded whatever the detector looks at, so
waiting for more bytes never delays traffic; it only delays the decoded view, and the wait is
bounded: a decision is made at the first line end, after ``PEEK`` bytes, when the other side
speaks, or at end of stream.

Rules, on the client's first bytes after what the servers themselves skip: Redis ignores blank
lines and leading whitespace before an inline command (its inline parser splits a line with
``sdssplitargs``, and a line with no argument is dropped; the next request may then start with
``*``), and an HTTP/1.1 server ignores empty lines before a request-line (RFC 9112 section 2.2;
nginx and llhttp skip any number of CR/LF, not spaces). At most ``MAX_BLANK`` such bytes are
skipped; past that the bytes are judged as they are.

* ``*`` (a RESP array): ``resp``;
* an HTTP method token followed by a space (``GET /``, ``PROPFIND``...), after nothing but empty
  lines: ``http``, when a version follows the target, the line is still arriving, or the line is
  HTTP/0.9's (``GET /x?token=...`` and its end: a path, no version; the HTTP decoder rejects
  it and its hex view hides the query's secrets, where a Redis inline ``GET`` would show them);
* a known Redis command word followed by a space or a line end (``PING\\r\\n``, ``set k v\\n``,
  what ``nc``/``telnet`` users type): ``resp`` (inline commands);
* printable UTF-8 text with a line end: ``text``;
* anything else: ``hex``.

Server-speaks-first protocols (SMTP, FTP, POP3 banners, SSH's ``SSH-2.0-...``): when the server
sends before the client has said enough, the decision is made at once, from the client's bytes
if they already settle it, else from the server's: a printable line is ``text``, else ``hex``.
"""

from __future__ import annotations

import re

from playground.decode.views import is_text

RESP = "resp"
HTTP = "http"
TEXT = "text"
HEX = "hex"
PROTOCOLS = (RESP, HTTP, TEXT, HEX)

PEEK = 64  # bytes looked at before deciding without a line end
MAX_BLANK = 1024  # leading blank lines and whitespace skipped, at most

_BLANK = b" \t\r\n\x0b\x0c"  # what Redis' inline parser skips (isspace)
_EMPTY_LINES = b"\r\n"  # what an HTTP server skips
_KEPT = MAX_BLANK + PEEK + 1024  # client bytes the detector keeps

HTTP_METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE "
    b"LOCK UNLOCK REPORT SEARCH PURGE MKCALENDAR".split()
)

# Commands people type inline (nc, telnet) plus the common data commands; case-insensitive.
REDIS_COMMANDS = frozenset(
    b"PING ECHO AUTH HELLO SELECT QUIT INFO CONFIG CLIENT COMMAND DBSIZE FLUSHALL FLUSHDB "
    b"SAVE BGSAVE LASTSAVE SHUTDOWN MONITOR DEBUG SLOWLOG LATENCY MEMORY ACL TIME ROLE "
    b"REPLICAOF SLAVEOF SYNC PSYNC REPLCONF WAIT MULTI EXEC DISCARD WATCH UNWATCH "
    b"GET SET SETNX SETEX PSETEX MGET MSET MSETNX GETSET GETDEL GETEX APPEND STRLEN INCR DECR "
    b"INCRBY DECRBY INCRBYFLOAT GETRANGE SETRANGE DEL UNLINK EXISTS EXPIRE PEXPIRE EXPIREAT TTL "
    b"PTTL PERSIST TYPE KEYS SCAN RENAME RENAMENX RANDOMKEY DUMP RESTORE OBJECT TOUCH COPY MOVE "
    b"LPUSH RPUSH LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM LINSERT LPOS LMOVE BLPOP BRPOP "
    b"BLMOVE RPOPLPUSH SADD SREM SMEMBERS SISMEMBER SCARD SPOP SRANDMEMBER SINTER SUNION SDIFF "
    b"SSCAN HSET HGET HMSET HMGET HGETALL HDEL HEXISTS HLEN HKEYS HVALS HINCRBY HSCAN HSETNX "
    b"ZADD ZREM ZRANGE ZREVRANGE ZRANGEBYSCORE ZSCORE ZCARD ZINCRBY ZRANK ZCOUNT ZSCAN ZPOPMIN "
    b"ZPOPMAX PUBLISH SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBSUB SSUBSCRIBE SPUBLISH "
    b"XADD XREAD XRANGE XLEN XDEL XGROUP XREADGROUP XACK XTRIM XINFO EVAL EVALSHA SCRIPT "
    b"FUNCTION FCALL PFADD PFCOUNT PFMERGE GEOADD GEODIST GEOSEARCH SETBIT GETBIT BITCOUNT "
    b"BITOP BITPOS MIGRATE CLUSTER READONLY READWRITE RESET LOLWUT SORT OBJECT".split()
)


_HTTP_LINE = re.compile(rb"[A-Z]+ +[^ \r\n]+ +HTTP/[0-9]")
_HTTP09_LINE = re.compile(rb"[A-Z]+ +/[^ \r\n]*\r?\n")  # a path and the line's end: no version


def _first_word(data: bytes) -> tuple[bytes, bytes]:
    """The first token and the byte after it (b"" when the token runs to the end)."""
    for i, c in enumerate(data[:24]):
        if c in b" \t\r\n":
            return data[:i], data[i:i + 1]
    return data[:24], b""


def classify(client: bytes, final: bool = False) -> str | None:
    """The protocol of a stream whose client side starts with ``client``, or None to wait.

    ``final``: no more bytes will be waited for (the other side spoke, or the stream ended).
    """
    if not client:
        return None
    if client[:1] in b" \t\r\n\x0b\x0c":
        body = client.lstrip(_BLANK)
        skipped = len(client) - len(body)
        if skipped > MAX_BLANK:
            return TEXT if is_text(client[:MAX_BLANK]) else HEX
        if not body:
            return (TEXT if is_text(client) else HEX) if final else None
        # an HTTP request-line may follow empty lines only; Redis skips any whitespace
        http = client[:skipped].strip(_EMPTY_LINES) == b""
        return _classify(body, final, http)
    return _classify(client, final, True)


def _classify(client: bytes, final: bool, http: bool) -> str | None:
    if client[:1] == b"*":
        return RESP
    nl = client.find(b"\n")
    line = client[: nl + 1] if nl >= 0 else client
    if nl < 0 and not final and len(client) < PEEK:
        # No line yet: wait while it may still be text; binary is binary at once.
        return None if is_text(client) or _utf8_tail(client) else HEX
    word, after = _first_word(line)
    if http and after == b" " and word in HTTP_METHODS:
        if _HTTP_LINE.match(line) or _HTTP09_LINE.match(line):
            return HTTP
        if nl < 0 and line[len(word) + 1:len(word) + 2] in (b"/", b"*", b"h"):
            return HTTP  # a long request line still arriving
    upper = word.upper()
    if after and upper in REDIS_COMMANDS and is_text(line):
        rest = line[len(word):].strip()
        if upper != b"HELLO" or not rest or rest[:1].isdigit():  # "hello there" is chat
            return RESP
    return TEXT if is_text(line) else HEX


def _utf8_tail(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError as e:
        return e.reason == "unexpected end of data" and is_text(data[: e.start])


def classify_server_first(server: bytes) -> str:
    """The protocol of a stream whose server spoke first (a banner)."""
    if server[:1] in (b"+", b"-") and server.endswith(b"\r\n") and is_text(server):
        return RESP  # e.g. a proxy or server greeting in RESP; harmless if not
    line_end = server.find(b"\n")
    head = server[: line_end + 1] if line_end >= 0 else server[:PEEK]
    return TEXT if head and is_text(head) else HEX


class Detector:
    """Collects the first bytes of both directions until the protocol is known.

    ``feed(direction, data)`` returns the decided protocol or None; once decided it keeps
    returning it. ``pending`` holds the ``(direction, data, now)`` chunks seen before the decision
    (bounded: the client side stops at ``PEEK`` bytes or its first line end after at most
    ``MAX_BLANK`` skipped bytes, and the first server bytes decide at once), for the chosen
    decoder to replay.
    """

    def __init__(self, client_direction: str = "c2s"):
        self.c2s = client_direction
        self.client = b""
        self.decided: str | None = None
        self.pending: list[tuple[str, bytes, float]] = []

    def feed(self, direction: str, data: bytes, now: float = 0.0) -> str | None:
        if self.decided is not None:
            return self.decided
        self.pending.append((direction, data, now))
        if direction == self.c2s:
            room = _KEPT - len(self.client)
            if room > 0:  # a contiguous prefix: enough to decide (see ``classify``)
                self.client += data[:room]
            self.decided = classify(self.client)
        else:
            self.decided = classify(self.client, final=True) if self.client else None
            if self.decided is None:
                self.decided = classify_server_first(data[: PEEK * 4])
        return self.decided

    def finish(self) -> str:
        """Decide with what there is (end of stream, or a half-close)."""
        if self.decided is None:
            self.decided = classify(self.client, final=True) or HEX
        return self.decided
