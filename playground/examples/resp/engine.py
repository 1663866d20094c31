"""The command engine of the small Redis-protocol server: keyspace, sessions, pub/sub, MULTI.

Pure and clock-free: ``Engine.execute(session, args, now)`` takes one command (a list of
``bytes``) and the current time, and returns a list of effects: ``Reply(value)`` for the
calling client (values in the ``playground.codec.values`` model), ``Deliver(session_id, value)``
for pub/sub messages to other clients, ``Close(reason)`` when the client must be disconnected.
Keys expire lazily on access and in ``Engine.sweep(now)``, which the adapter calls periodically.
Replies and error texts follow Redis 7 (``ERR wrong number of arguments for 'get' command``).
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections import deque
from typing import Any

import attrs

from playground.codec.encoder import encode
from playground.codec.values import Error, Map, Push, Set, Simple, Verbatim

REDIS_VERSION = b"7.0.0"
MAX_STRING = 512 * 1024 * 1024  # proto-max-bulk-len: no string value grows beyond this
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


# ---------------------------------------------------------------------------- effects


@attrs.frozen
class Reply:
    """A reply to the client that sent the command."""

    value: Any


@attrs.frozen
class Deliver:
    """A pub/sub message for another (or the same) client, already shaped for its protocol."""

    session_id: int
    value: Any


@attrs.frozen
class Close:
    """Disconnect the client after its pending replies are written."""

    reason: str


class NullArray:
    """Redis's null array: ``*-1`` in RESP2, ``_`` in RESP3 (``LPOP missing 2``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "NULL_ARRAY"


NULL_ARRAY = NullArray()


def encode_reply(value, protocol: int = 2) -> bytes:
    """``resp.encode`` plus ``NULL_ARRAY`` (which the shared value model has no type for)."""
    if value is NULL_ARRAY:
        return b"*-1\r\n" if protocol == 2 else b"_\r\n"
    if type(value) is list and any(v is NULL_ARRAY for v in value):  # EXEC's replies
        return b"*%d\r\n" % len(value) + b"".join(encode_reply(v, protocol) for v in value)
    return encode(value, protocol)

OK = Simple(b"OK")
QUEUED = Simple(b"QUEUED")
PONG = Simple(b"PONG")


def _err(text: str | bytes) -> Error:
    """An error reply; ``text`` starts with its code (``ERR``, ``WRONGTYPE`` ...)."""
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    return Error(text.replace(b"\r", b" ").replace(b"\n", b" "))


WRONGTYPE = _err("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INTEGER = _err("ERR value is not an integer or out of range")
SYNTAX = _err("ERR syntax error")
NOAUTH = _err("NOAUTH Authentication required.")
WRONGPASS = _err("WRONGPASS invalid username-password pair or user is disabled.")
NOT_POSITIVE = _err("ERR value is out of range, must be positive")
NO_SUCH_KEY = _err("ERR no such key")


class _Effects(list):
    """Returned by a handler that produces more than one effect (SUBSCRIBE, PUBLISH, EXEC)."""


# ---------------------------------------------------------------------------- helpers

_INT = re.compile(rb"(?:0|-?[1-9][0-9]{0,18})\Z")


def parse_int(data: bytes) -> int | None:
    """Redis's strict ``string2ll``: no sign '+', no spaces, no leading zeros, int64 range."""
    if not _INT.match(data):
        return None
    n = int(data)
    return n if _I64_MIN <= n <= _I64_MAX else None


def _as_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


_glob_cache: dict[bytes, re.Pattern] = {}


def glob_to_regex(pattern: bytes) -> re.Pattern:
    """Compile a Redis glob (``*``, ``?``, ``[a-z]``, ``[^abc]``, ``\\x``) to a bytes regex."""
    found = _glob_cache.get(pattern)
    if found is not None:
        return found
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out.append(b".*")
        elif c == 0x3F:  # ?
            out.append(b".")
        elif c == 0x5B:  # [
            i += 1
            negate = i < n and pattern[i] == 0x5E
            if negate:
                i += 1
            members = []
            while i < n and pattern[i] != 0x5D:
                ch = pattern[i]
                if ch == 0x5C and i + 1 < n:
                    i += 1
                    members.append(b"\\x%02x" % pattern[i])
                elif i + 2 < n and pattern[i + 1] == 0x2D:
                    lo, hi = sorted((ch, pattern[i + 2]))
                    members.append(b"\\x%02x-\\x%02x" % (lo, hi))
                    i += 2
                else:
                    members.append(b"\\x%02x" % ch)
                i += 1
            if members:
                out.append(b"[" + (b"^" if negate else b"") + b"".join(members) + b"]")
            else:
                out.append(b"." if negate else b"(?!)")
        elif c == 0x5C and i + 1 < n:  # backslash escape
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        else:
            out.append(re.escape(bytes([c])))
        i += 1
    compiled = re.compile(b"".join(out) + b"\\Z", re.DOTALL)
    if len(_glob_cache) > 256:
        _glob_cache.clear()
    _glob_cache[pattern] = compiled
    return compiled


def glob_match(pattern: bytes, value: bytes) -> bool:
    return glob_to_regex(pattern).match(value) is not None


def _ms(now: float) -> int:
    return int(now * 1000)


# ---------------------------------------------------------------------------- sessions


@attrs.define(eq=False)
class Session:
    """Per-client state: protocol version, auth, name, transaction queue, subscriptions."""

    id: int
    peer: str = ""
    local: str = ""
    created: float = 0.0
    last_active: float = 0.0
    protocol: int = 2
    authenticated: bool = True
    name: bytes | None = None
    lib_name: bytes = b""
    lib_ver: bytes = b""
    multi: list | None = None  # queued commands while in MULTI
    multi_failed: bool = False  # a command was rejected while queueing: EXEC aborts
    watched: set = attrs.Factory(set)
    dirty: bool = False  # a WATCHed key changed
    channels: dict = attrs.Factory(dict)  # ordered set of subscribed channels
    patterns: dict = attrs.Factory(dict)
    last_command: str = "NULL"
    closed: bool = False

    @property
    def subscriptions(self) -> int:
        return len(self.channels) + len(self.patterns)

    def shape(self, items: list):
        """A pub/sub frame: a push in RESP3, a plain array in RESP2."""
        return Push(tuple(items)) if self.protocol == 3 else items


# ---------------------------------------------------------------------------- keyspace


class Keyspace:
    """Keys to values (``bytes``, ``deque`` for lists, ``dict`` for hashes) with expiry.

    Deadlines are integer milliseconds; a key is expired once ``now_ms > deadline`` (as Redis).
    A min-heap of deadlines makes the periodic sweep cost proportional to what expires.
    SCAN order is key creation order (a sequence number per key), so a key present for a whole
    iteration is returned exactly once whatever else is added or removed meanwhile.
    """

    def __init__(self):
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, int] = {}
        self.expired = 0  # keys removed because their time was up
        self._heap: list[tuple[int, bytes]] = []
        self._seq = 0
        self._seq_of: dict[bytes, int] = {}
        self._scan_seqs: list[int] = []
        self._scan_keys: list[bytes] = []
        self._watchers: dict[bytes, set[Session]] = {}

    # -- lookups and writes
    def expire_if_needed(self, key: bytes, now_ms: int) -> bool:
        deadline = self.expires.get(key)
        if deadline is not None and now_ms > deadline:
            self.expired += 1
            self.delete(key)
            return True
        return False

    def get(self, key: bytes, now_ms: int):
        if key in self.expires:
            self.expire_if_needed(key, now_ms)
        return self.data.get(key)

    def contains(self, key: bytes, now_ms: int) -> bool:
        return self.get(key, now_ms) is not None

    def put(self, key: bytes, value, keep_ttl: bool = False) -> None:
        if key not in self.data:
            self._seq += 1
            self._seq_of[key] = self._seq
            self._scan_seqs.append(self._seq)
            self._scan_keys.append(key)
        elif not keep_ttl:
            self.expires.pop(key, None)
        self.data[key] = value
        self.touch(key)

    def delete(self, key: bytes) -> bool:
        if key not in self.data:
            return False
        del self.data[key]
        self.expires.pop(key, None)
        del self._seq_of[key]
        if len(self._scan_seqs) > 64 and len(self._scan_seqs) > 2 * len(self._seq_of):
            self._compact_scan_order()
        self.touch(key)
        return True

    def touch(self, key: bytes) -> None:
        """Mark ``key`` modified: transactions WATCHing it will fail."""
        watchers = self._watchers.get(key)
        if watchers:
            for session in watchers:
                session.dirty = True

    def flush(self) -> None:
        for watchers in self._watchers.values():
            for session in watchers:
                session.dirty = True
        self.data.clear()
        self.expires.clear()
        self._heap.clear()
        self._seq_of.clear()
        self._scan_seqs.clear()
        self._scan_keys.clear()

    # -- expiry
    def set_deadline(self, key: bytes, deadline_ms: int) -> None:
        self.expires[key] = deadline_ms
        heapq.heappush(self._heap, (deadline_ms, key))
        if len(self._heap) > 1024 and len(self._heap) > 4 * len(self.expires):
            self._heap = [(when, k) for k, when in self.expires.items()]
            heapq.heapify(self._heap)
        self.touch(key)

    def persist(self, key: bytes) -> bool:
        if self.expires.pop(key, None) is None:
            return False
        self.touch(key)
        return True

    def sweep(self, now_ms: int, limit: int = 10_000) -> int:
        """Remove up to ``limit`` keys whose deadline has passed; return how many."""
        removed = 0
        heap = self._heap
        while heap and heap[0][0] < now_ms and removed < limit:
            when, key = heapq.heappop(heap)
            if self.expires.get(key) == when:  # else a stale entry: deadline changed or gone
                self.expired += 1
                self.delete(key)
                removed += 1
        return removed

    # -- iteration
    def _compact_scan_order(self) -> None:
        live = [(s, k) for s, k in zip(self._scan_seqs, self._scan_keys, strict=True)
                if self._seq_of.get(k) == s]
        self._scan_seqs = [s for s, _ in live]
        self._scan_keys = [k for _, k in live]

    def scan(self, cursor: int, count: int, now_ms: int) -> tuple[int, list[bytes]]:
        """Visit about ``count`` keys created after ``cursor``; return (next cursor, live keys)."""
        start = bisect.bisect_right(self._scan_seqs, cursor)
        keys = []
        visited = 0
        i = start
        seqs, names = self._scan_seqs, self._scan_keys
        while i < len(seqs) and visited < count:
            seq, key = seqs[i], names[i]
            i += 1
            if self._seq_of.get(key) != seq:
                continue
            visited += 1
            if not self.expire_if_needed(key, now_ms):
                keys.append(key)
        if i >= len(seqs):
            return 0, keys
        return seqs[i - 1], keys

    # -- WATCH
    def watch(self, session: Session, key: bytes) -> None:
        self._watchers.setdefault(key, set()).add(session)
        session.watched.add(key)

    def unwatch_all(self, session: Session) -> None:
        for key in session.watched:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(session)
                if not watchers:
                    del self._watchers[key]
        session.watched.clear()
        session.dirty = False


# ---------------------------------------------------------------------------- commands


@attrs.frozen
class Command:
    """A command's metadata (arity as Redis counts it: negative = at least)."""

    name: str
    arity: int
    handler: str
    flags: tuple = ()
    keys: tuple = (0, 0, 0)  # first key, last key, step
    group: str = "generic"
    summary: str = ""
    since: str = "1.0.0"
    subcommands: tuple = ()
    parent: str = ""

    @property
    def fullname(self) -> str:
        return f"{self.parent}|{self.name}" if self.parent else self.name


def _c(name, arity, handler, flags="", keys=(0, 0, 0), group="generic", summary="", since="1.0.0",
       subcommands=()):
    subs = tuple(
        attrs.evolve(s, parent=name) for s in subcommands
    )
    return Command(name, arity, handler, tuple(flags.split()), keys, group, summary, since, subs)


_K1 = (1, 1, 1)
_KALL = (1, -1, 1)

COMMANDS: dict[str, Command] = {c.name: c for c in [
    # connection
    _c("ping", -1, "ping", "fast", group="connection", summary="Returns the server's liveliness response."),
    _c("echo", 2, "echo", "fast", group="connection", summary="Returns the given string."),
    _c("quit", -1, "quit", "fast noauth", group="connection", summary="Closes the connection."),
    _c("reset", 1, "reset", "fast noauth", group="connection", summary="Resets the connection.",
       since="6.2.0"),
    _c("hello", -1, "hello", "fast noauth", group="connection",
       summary="Handshakes with the Redis server.", since="6.0.0"),
    _c("auth", -2, "auth", "fast noauth", group="connection", summary="Authenticates the connection."),
    _c("select", 2, "select", "fast", group="connection", summary="Changes the selected database."),
    _c("client", -2, "", group="connection", summary="A container for client connection commands.",
       subcommands=(
           _c("setname", 3, "client_setname", "fast", group="connection",
              summary="Sets the connection name.", since="2.6.9"),
           _c("getname", 2, "client_getname", "fast", group="connection",
              summary="Returns the name of the connection.", since="2.6.9"),
           _c("id", 2, "client_id", "fast", group="connection",
              summary="Returns the unique client ID of the connection.", since="5.0.0"),
           _c("setinfo", 4, "client_setinfo", "fast", group="connection",
              summary="Sets information specific to the client or connection.", since="7.2.0"),
           _c("info", 2, "client_info", "fast", group="connection",
              summary="Returns information about the connection.", since="6.2.0"),
           _c("list", -2, "client_list", "", group="connection",
              summary="Lists open connections.", since="2.4.0"),
           _c("help", 2, "client_help", "fast", group="connection",
              summary="Returns helpful text about the different subcommands.", since="5.0.0"),
       )),
    _c("info", -1, "info", "", group="server", summary="Returns information and statistics about the server."),
    _c("dbsize", 1, "dbsize", "readonly fast", group="server", summary="Returns the number of keys in the database."),
    _c("flushdb", -1, "flushdb", "write", group="server", summary="Removes all keys from the current database."),
    _c("flushall", -1, "flushall", "write", group="server", summary="Removes all keys from all databases."),
    _c("time", 1, "time", "fast", group="server", summary="Returns the server time.", since="2.6.0"),
    _c("command", -1, "command", "", group="server",
       summary="Returns detailed information about all commands.", since="2.8.13", subcommands=(
           _c("count", 2, "command_count", "", group="server",
              summary="Returns a count of commands.", since="2.8.13"),
           _c("docs", -2, "command_docs", "", group="server",
              summary="Returns documentary information about one, multiple or all commands.",
              since="7.0.0"),
           _c("info", -2, "command_info", "", group="server",
              summary="Returns information about one, multiple or all commands.", since="2.8.13"),
           _c("list", -2, "command_list", "", group="server",
              summary="Returns a list of command names.", since="7.0.0"),
           _c("help", 2, "command_help", "", group="server",
              summary="Returns helpful text about the different subcommands.", since="5.0.0"),
       )),
    _c("config", -2, "", group="server", summary="A container for server configuration commands.",
       since="2.0.0", subcommands=(
           _c("get", -3, "config_get", "", group="server",
              summary="Returns the effective values of configuration parameters.", since="2.0.0"),
       )),
    # strings
    _c("get", 2, "get", "readonly fast", _K1, "string", "Returns the string value of a key."),
    _c("set", -3, "set", "write", _K1, "string", "Sets the string value of a key."),
    _c("mget", -2, "mget", "readonly fast", _KALL, "string", "Atomically returns the string values of one or more keys."),
    _c("mset", -3, "mset", "write", (1, -1, 2), "string", "Atomically creates or modifies the string values of one or more keys.", "1.0.1"),
    _c("setnx", 3, "setnx", "write fast", _K1, "string", "Set the string value of a key only when the key doesn't exist."),
    _c("getdel", 2, "getdel", "write fast", _K1, "string", "Returns the string value of a key after deleting the key.", "6.2.0"),
    _c("incr", 2, "incr", "write fast", _K1, "string", "Increments the integer value of a key by one."),
    _c("incrby", 3, "incrby", "write fast", _K1, "string", "Increments the integer value of a key by a number."),
    _c("decr", 2, "decr", "write fast", _K1, "string", "Decrements the integer value of a key by one."),
    _c("decrby", 3, "decrby", "write fast", _K1, "string", "Decrements a number from the integer value of a key."),
    _c("append", 3, "append", "write fast", _K1, "string", "Appends a string to the value of a key.", "2.0.0"),
    _c("strlen", 2, "strlen", "readonly fast", _K1, "string", "Returns the length of a string value.", "2.2.0"),
    # keys
    _c("del", -2, "del_", "write", _KALL, "generic", "Deletes one or more keys."),
    _c("exists", -2, "exists", "readonly fast", _KALL, "generic", "Determines whether one or more keys exist."),
    _c("expire", -3, "expire", "write fast", _K1, "generic", "Sets the expiration time of a key in seconds."),
    _c("pexpire", -3, "pexpire", "write fast", _K1, "generic", "Sets the expiration time of a key in milliseconds.", "2.6.0"),
    _c("ttl", 2, "ttl", "readonly fast", _K1, "generic", "Returns the expiration time in seconds of a key."),
    _c("pttl", 2, "pttl", "readonly fast", _K1, "generic", "Returns the expiration time in milliseconds of a key.", "2.6.0"),
    _c("persist", 2, "persist", "write fast", _K1, "generic", "Removes the expiration time of a key.", "2.2.0"),
    _c("type", 2, "type", "readonly fast", _K1, "generic", "Determines the type of value stored at a key."),
    _c("rename", 3, "rename", "write", (1, 2, 1), "generic", "Renames a key and overwrites the destination."),
    _c("keys", 2, "keys", "readonly", group="generic", summary="Returns all key names that match a pattern."),
    _c("scan", -2, "scan", "readonly", group="generic", summary="Iterates over the key names in the database.", since="2.8.0"),
    # lists
    _c("lpush", -3, "lpush", "write fast", _K1, "list", "Prepends one or more elements to a list."),
    _c("rpush", -3, "rpush", "write fast", _K1, "list", "Appends one or more elements to a list."),
    _c("lpop", -2, "lpop", "write fast", _K1, "list", "Returns the first elements in a list after removing it."),
    _c("rpop", -2, "rpop", "write fast", _K1, "list", "Returns and removes the last elements of a list."),
    _c("lrange", 4, "lrange", "readonly", _K1, "list", "Returns a range of elements from a list."),
    _c("llen", 2, "llen", "readonly fast", _K1, "list", "Returns the length of a list."),
    # hashes
    _c("hset", -4, "hset", "write fast", _K1, "hash", "Creates or modifies the value of a field in a hash.", "2.0.0"),
    _c("hget", 3, "hget", "readonly fast", _K1, "hash", "Returns the value of a field in a hash.", "2.0.0"),
    _c("hdel", -3, "hdel", "write fast", _K1, "hash", "Deletes one or more fields and their values from a hash.", "2.0.0"),
    _c("hgetall", 2, "hgetall", "readonly", _K1, "hash", "Returns all fields and values in a hash.", "2.0.0"),
    _c("hlen", 2, "hlen", "readonly fast", _K1, "hash", "Returns the number of fields in a hash.", "2.0.0"),
    _c("hexists", 3, "hexists", "readonly fast", _K1, "hash", "Determines whether a field exists in a hash.", "2.0.0"),
    # pub/sub
    _c("subscribe", -2, "subscribe", "pubsub", group="pubsub", summary="Listens for messages published to channels.", since="2.0.0"),
    _c("unsubscribe", -1, "unsubscribe", "pubsub", group="pubsub", summary="Stops listening to messages posted to channels.", since="2.0.0"),
    _c("psubscribe", -2, "psubscribe", "pubsub", group="pubsub", summary="Listens for messages published to channels that match one or more patterns.", since="2.0.0"),
    _c("punsubscribe", -1, "punsubscribe", "pubsub", group="pubsub", summary="Stops listening to messages published to channels that match one or more patterns.", since="2.0.0"),
    _c("publish", 3, "publish", "pubsub fast", group="pubsub", summary="Posts a message to a channel.", since="2.0.0"),
    # transactions
    _c("multi", 1, "multi", "fast", group="transactions", summary="Starts a transaction.", since="1.2.0"),
    _c("exec", 1, "exec_", "", group="transactions", summary="Executes all commands in a transaction.", since="1.2.0"),
    _c("discard", 1, "discard", "fast", group="transactions", summary="Discards a transaction.", since="2.0.0"),
    _c("watch", -2, "watch", "fast", _KALL, "transactions", "Monitors changes to keys to determine the execution of a transaction.", "2.2.0"),
    _c("unwatch", 1, "unwatch", "fast", group="transactions", summary="Forgets about watched keys of a transaction.", since="2.2.0"),
]}

# Commands a RESP2 client in subscribed mode may still send (Redis's list).
_PUBSUB_ALLOWED = frozenset({"ping", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
                             "quit", "reset"})
# Commands that run at once inside MULTI instead of being queued.
_MULTI_IMMEDIATE = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})

_CONFIG = {
    b"save": b"",
    b"appendonly": b"no",
    b"databases": b"1",
    b"maxclients": b"10000",
    b"timeout": b"0",
    b"proto-max-bulk-len": b"536870912",
    b"maxmemory": b"0",
    b"maxmemory-policy": b"noeviction",
}


def _type_name(value) -> bytes:
    if value is None:
        return b"none"
    if isinstance(value, bytes):
        return b"string"
    return b"list" if isinstance(value, deque) else b"hash"


def _client_name_ok(name: bytes) -> bool:
    return all(33 <= c <= 126 for c in name)


class Engine:
    """One in-memory database, its clients, and the commands they run."""

    def __init__(self, password: bytes | str | None = None, config: dict | None = None):
        if isinstance(password, str):
            password = password.encode()
        self.password = password or None
        self.keyspace = Keyspace()
        self.sessions: dict[int, Session] = {}
        self.channels: dict[bytes, dict[Session, None]] = {}
        self.patterns: dict[bytes, dict[Session, None]] = {}
        self.config = dict(_CONFIG)
        if config:
            self.config.update(config)
        self.started: float | None = None
        self.commands_processed = 0
        self.connections_received = 0
        self._next_id = 0

    # -- session lifecycle
    def connect(self, now: float, peer: str = "", local: str = "") -> Session:
        if self.started is None:
            self.started = now
        self._next_id += 1
        self.connections_received += 1
        session = Session(id=self._next_id, peer=peer, local=local, created=now, last_active=now,
                          authenticated=self.password is None)
        self.sessions[session.id] = session
        return session

    def disconnect(self, session: Session) -> None:
        self._unsubscribe_all(session)
        self.keyspace.unwatch_all(session)
        session.closed = True
        self.sessions.pop(session.id, None)

    def sweep(self, now: float, limit: int = 10_000) -> int:
        """Expire keys whose time is up (bounded work per call); return how many went."""
        return self.keyspace.sweep(_ms(now), limit)

    # -- dispatch
    def lookup(self, args: list[bytes]) -> Command | Error:
        name = args[0].lower().decode("latin-1")
        cmd = COMMANDS.get(name)
        if cmd is None:
            shown = b""
            for arg in args[1:]:
                if len(shown) >= 128:
                    break
                shown += b"'" + arg[: 128 - len(shown)] + b"' "
            return _err(b"ERR unknown command '" + args[0][:128] + b"', with args beginning with: "
                        + shown)
        if cmd.subcommands and len(args) >= 2:
            sub = args[1].lower().decode("latin-1")
            for s in cmd.subcommands:
                if s.name == sub:
                    return s
            return _err(b"ERR unknown subcommand '" + args[1][:128] + b"'. Try "
                        + name.upper().encode() + b" HELP.")
        return cmd

    def execute(self, session: Session, args: list[bytes], now: float) -> list:
        """Run one command for ``session``; return its effects (replies, deliveries, close)."""
        if not args:
            return []
        self.commands_processed += 1
        session.last_active = now
        cmd = self.lookup(args)
        if isinstance(cmd, Error):
            return self._reject(session, cmd)
        session.last_command = cmd.fullname
        n = len(args)
        if (cmd.arity > 0 and n != cmd.arity) or n < -cmd.arity or not cmd.handler:
            return self._reject(
                session, _err(f"ERR wrong number of arguments for '{cmd.fullname}' command"))
        if not session.authenticated and "noauth" not in cmd.flags:
            return self._reject(session, NOAUTH)
        top = cmd.parent or cmd.name
        if session.protocol == 2 and session.subscriptions and top not in _PUBSUB_ALLOWED:
            return self._reject(session, _err(
                f"ERR Can't execute '{cmd.fullname}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                "PING / QUIT / RESET are allowed in this context"))
        if session.multi is not None and top not in _MULTI_IMMEDIATE:
            session.multi.append((cmd, args))
            return [Reply(QUEUED)]
        return self._run(cmd, session, args, now)

    def _reject(self, session: Session, error: Error) -> list:
        if session.multi is not None:
            session.multi_failed = True
        return [Reply(error)]

    def _run(self, cmd: Command, session: Session, args: list[bytes], now: float) -> list:
        result = getattr(self, "_cmd_" + cmd.handler)(session, args, now)
        if isinstance(result, _Effects):
            return list(result)
        return [Reply(result)]

    # ------------------------------------------------------------ connection commands
    def _cmd_ping(self, session, args, now):
        if len(args) > 2:
            return _err("ERR wrong number of arguments for 'ping' command")
        if session.protocol == 2 and session.subscriptions:
            return [b"pong", args[1] if len(args) > 1 else b""]
        return args[1] if len(args) > 1 else PONG

    def _cmd_echo(self, session, args, now):
        return args[1]

    def _cmd_quit(self, session, args, now):
        return _Effects([Reply(OK), Close("QUIT")])

    def _cmd_reset(self, session, args, now):
        session.multi = None
        session.multi_failed = False
        self.keyspace.unwatch_all(session)
        self._unsubscribe_all(session)
        session.protocol = 2
        session.name = None
        session.authenticated = self.password is None
        return Simple(b"RESET")

    def _check_password(self, user: bytes, password: bytes) -> bool:
        if user != b"default":
            return False
        return self.password is None or password == self.password

    def _cmd_auth(self, session, args, now):
        if len(args) > 3:
            return SYNTAX
        if len(args) == 2:
            if self.password is None:
                return _err("ERR AUTH <password> called without any password configured for the "
                            "default user. Are you sure your configuration is correct?")
            user, password = b"default", args[1]
        else:
            user, password = args[1], args[2]
        if self._check_password(user, password):
            session.authenticated = True
            return OK
        return WRONGPASS

    def _cmd_hello(self, session, args, now):
        version = None
        if len(args) >= 2:
            version = parse_int(args[1])
            if version is None:
                return _err("ERR Protocol version is not an integer or out of range")
            if version < 2 or version > 3:
                return _err("NOPROTO unsupported protocol version")
        user = password = name = None
        j = 2
        while j < len(args):
            more = len(args) - 1 - j
            opt = args[j].lower()
            if opt == b"auth" and more >= 2:
                user, password = args[j + 1], args[j + 2]
                j += 3
            elif opt == b"setname" and more >= 1:
                name = args[j + 1]
                j += 2
            else:
                return _err(b"ERR Syntax error in HELLO option '" + args[j] + b"'")
        if user is not None:
            if not self._check_password(user, password):
                return WRONGPASS
            session.authenticated = True
        if not session.authenticated:
            return _err("NOAUTH HELLO must be called with the client already authenticated, "
                        "otherwise the HELLO AUTH <user> <pass> option can be used to "
                        "authenticate the client and select the RESP protocol version at the same "
                        "time")
        if name is not None:
            if not _client_name_ok(name):
                return _err("ERR Client names cannot contain spaces, newlines or special "
                            "characters.")
            session.name = name or None
        if version is not None:
            session.protocol = version
        return Map((
            (b"server", b"redis"),
            (b"version", REDIS_VERSION),
            (b"proto", session.protocol),
            (b"id", session.id),
            (b"mode", b"standalone"),
            (b"role", b"master"),
            (b"modules", []),
        ))

    def _cmd_select(self, session, args, now):
        index = parse_int(args[1])
        if index is None:
            return NOT_INTEGER
        if index != 0:
            return _err("ERR DB index is out of range")
        return OK

    def _cmd_client_setname(self, session, args, now):
        name = args[2]
        if not _client_name_ok(name):
            return _err("ERR Client names cannot contain spaces, newlines or special characters.")
        session.name = name or None
        return OK

    def _cmd_client_getname(self, session, args, now):
        return session.name

    def _cmd_client_id(self, session, args, now):
        return session.id

    def _cmd_client_setinfo(self, session, args, now):
        attr = args[2].lower()
        if attr not in (b"lib-name", b"lib-ver"):
            return _err(b"ERR Unrecognized option '" + args[2] + b"'")
        value = args[3]
        if not _client_name_ok(value) and value:
            return _err(b"ERR " + attr + b" cannot contain spaces, newlines or special characters.")
        if attr == b"lib-name":
            session.lib_name = value
        else:
            session.lib_ver = value
        return OK

    def _client_line(self, s: Session, now: float) -> bytes:
        flags = ("P" if s.subscriptions else "") + ("x" if s.multi is not None else "") or "N"
        return (
            f"id={s.id} addr={s.peer} laddr={s.local} fd=-1 name={_as_text(s.name or b'')} "
            f"age={int(now - s.created)} idle={int(now - s.last_active)} flags={flags} db=0 "
            f"sub={len(s.channels)} psub={len(s.patterns)} ssub=0 "
            f"multi={-1 if s.multi is None else len(s.multi)} cmd={s.last_command} user=default "
            f"resp={s.protocol} lib-name={_as_text(s.lib_name)} lib-ver={_as_text(s.lib_ver)}\n"
        ).encode()

    def _cmd_client_info(self, session, args, now):
        return Verbatim(b"txt", self._client_line(session, now))

    def _cmd_client_list(self, session, args, now):
        if len(args) > 2:
            return SYNTAX
        lines = b"".join(self._client_line(s, now) for s in self.sessions.values())
        return Verbatim(b"txt", lines)

    def _cmd_client_help(self, session, args, now):
        return self._help("CLIENT", COMMANDS["client"])

    def _help(self, name: str, cmd: Command):
        lines = [f"{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"]
        for s in cmd.subcommands:
            lines.append(f"{s.name.upper()}")
            lines.append(f"    {s.summary}")
        return [Simple(line.encode()) for line in lines]

    # ------------------------------------------------------------ server commands
    def _cmd_info(self, session, args, now):
        wanted = {a.lower() for a in args[1:]} or {b"default"}
        every = bool(wanted & {b"all", b"everything", b"default"})
        ks = self.keyspace
        uptime = int(now - (self.started if self.started is not None else now))
        sections = {
            b"server": [
                ("redis_version", REDIS_VERSION.decode()),
                ("redis_mode", "standalone"),
                ("tcpplay", "1"),
                ("uptime_in_seconds", uptime),
                ("uptime_in_days", uptime // 86400),
            ],
            b"clients": [
                ("connected_clients", len(self.sessions)),
                ("maxclients", self.config[b"maxclients"].decode()),
                ("pubsub_clients", sum(1 for s in self.sessions.values() if s.subscriptions)),
            ],
            b"stats": [
                ("total_connections_received", self.connections_received),
                ("total_commands_processed", self.commands_processed),
                ("expired_keys", ks.expired),
                ("pubsub_channels", len(self.channels)),
                ("pubsub_patterns", len(self.patterns)),
            ],
            b"keyspace": [],
        }
        if ks.data:
            sections[b"keyspace"].append(
                ("db0", f"keys={len(ks.data)},expires={len(ks.expires)},avg_ttl=0"))
        out = []
        for name, fields in sections.items():
            if every or name in wanted:
                if out:
                    out.append("")
                out.append(f"# {name.decode().capitalize()}")
                out.extend(f"{k}:{v}" for k, v in fields)
        text = ("\r\n".join(out) + "\r\n").encode() if out else b""
        return Verbatim(b"txt", text)

    def _cmd_dbsize(self, session, args, now):
        return len(self.keyspace.data)

    def _flush(self, args):
        if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"async", b"sync")):
            return SYNTAX
        self.keyspace.flush()
        return OK

    def _cmd_flushdb(self, session, args, now):
        return self._flush(args)

    def _cmd_flushall(self, session, args, now):
        return self._flush(args)

    def _cmd_time(self, session, args, now):
        micros = int(round(now * 1_000_000))
        return [str(micros // 1_000_000).encode(), str(micros % 1_000_000).encode()]

    def _command_entry(self, cmd: Command):
        first, last, step = cmd.keys
        return [
            cmd.fullname.encode(),
            cmd.arity,
            Set(tuple(Simple(f.replace("noauth", "no_auth").encode()) for f in cmd.flags)),
            first, last, step,
            Set((Simple(f"@{cmd.group}".encode()),)),
            [],
            [],
            [self._command_entry(s) for s in cmd.subcommands],
        ]

    def _cmd_command(self, session, args, now):
        return [self._command_entry(c) for c in COMMANDS.values()]

    def _cmd_command_count(self, session, args, now):
        return len(COMMANDS)

    def _cmd_command_list(self, session, args, now):
        if len(args) > 2:
            return SYNTAX
        return [name.encode() for name in COMMANDS]

    def _cmd_command_help(self, session, args, now):
        return self._help("COMMAND", COMMANDS["command"])

    def _find(self, name: bytes) -> Command | None:
        top, _, sub = name.lower().decode("latin-1").partition("|")
        cmd = COMMANDS.get(top)
        if cmd is not None and sub:
            cmd = next((s for s in cmd.subcommands if s.name == sub), None)
        return cmd

    def _cmd_command_info(self, session, args, now):
        if len(args) == 2:
            return self._cmd_command(session, args, now)
        found = [self._find(name) for name in args[2:]]
        return [self._command_entry(c) if c is not None else None for c in found]

    def _doc(self, cmd: Command) -> Map:
        items = [
            (b"summary", cmd.summary.encode()),
            (b"since", cmd.since.encode()),
            (b"group", cmd.group.encode()),
        ]
        if cmd.subcommands:
            items.append((b"subcommands", Map(tuple((s.fullname.encode(), self._doc(s))
                                                    for s in cmd.subcommands))))
        return Map(tuple(items))

    def _cmd_command_docs(self, session, args, now):
        if len(args) == 2:
            cmds = list(COMMANDS.values())
        else:
            cmds = [c for c in (self._find(name) for name in args[2:]) if c is not None]
        return Map(tuple((c.fullname.encode(), self._doc(c)) for c in cmds))

    def _cmd_config_get(self, session, args, now):
        found = {}
        for pattern in args[2:]:
            for key, value in self.config.items():
                if glob_match(pattern.lower(), key):
                    found[key] = value
        return Map(tuple(found.items()))

    # ------------------------------------------------------------ strings
    def _string(self, key: bytes, now: float):
        """The string at ``key``: (value or None, None) or (None, WRONGTYPE)."""
        value = self.keyspace.get(key, _ms(now))
        if value is None or isinstance(value, bytes):
            return value, None
        return None, WRONGTYPE

    def _cmd_get(self, session, args, now):
        value, error = self._string(args[1], now)
        return error or value

    def _cmd_set(self, session, args, now):
        key, value = args[1], args[2]
        cond = None
        get = keep_ttl = False
        expire_kind = expire_arg = None
        i = 3
        while i < len(args):
            opt = args[i].lower()
            has_next = i + 1 < len(args)
            if opt in (b"nx", b"xx") and cond is None:
                cond = opt
            elif opt == b"get" and not get:
                get = True
            elif opt == b"keepttl" and not keep_ttl and expire_kind is None:
                keep_ttl = True
            elif (opt in (b"ex", b"px", b"exat", b"pxat") and expire_kind is None and not keep_ttl
                  and has_next):
                expire_kind, expire_arg = opt, args[i + 1]
                i += 1
            else:
                return SYNTAX
            i += 1
        now_ms = _ms(now)
        deadline = None
        if expire_kind is not None:
            amount = parse_int(expire_arg)
            if amount is None:
                return NOT_INTEGER
            deadline = self._deadline(expire_kind, amount, now_ms)
            if deadline is None or amount <= 0:
                return _err("ERR invalid expire time in 'set' command")
        ks = self.keyspace
        old = ks.get(key, now_ms)
        if get and old is not None and not isinstance(old, bytes):
            return WRONGTYPE
        if (cond == b"nx" and old is not None) or (cond == b"xx" and old is None):
            return old if get else None
        ks.put(key, value, keep_ttl=keep_ttl)
        if deadline is not None:
            ks.set_deadline(key, deadline)
        elif not keep_ttl:
            ks.expires.pop(key, None)
        return old if get else OK

    @staticmethod
    def _deadline(kind: bytes, amount: int, now_ms: int) -> int | None:
        """Absolute deadline in ms for EX/PX/EXAT/PXAT ``amount``; None on overflow."""
        ms = amount * 1000 if kind in (b"ex", b"exat") else amount
        if kind in (b"ex", b"px"):
            ms += now_ms
        return ms if _I64_MIN <= ms <= _I64_MAX else None

    def _cmd_mget(self, session, args, now):
        now_ms = _ms(now)
        out = []
        for key in args[1:]:
            value = self.keyspace.get(key, now_ms)
            out.append(value if isinstance(value, bytes) else None)
        return out

    def _cmd_mset(self, session, args, now):
        if len(args) % 2 == 0:
            return _err("ERR wrong number of arguments for 'mset' command")
        for i in range(1, len(args), 2):
            self.keyspace.put(args[i], args[i + 1])
        return OK

    def _cmd_setnx(self, session, args, now):
        if self.keyspace.contains(args[1], _ms(now)):
            return 0
        self.keyspace.put(args[1], args[2])
        return 1

    def _cmd_getdel(self, session, args, now):
        value, error = self._string(args[1], now)
        if error:
            return error
        if value is not None:
            self.keyspace.delete(args[1])
        return value

    def _add(self, key: bytes, delta: int, now: float):
        value, error = self._string(key, now)
        if error:
            return error
        current = 0 if value is None else parse_int(value)
        if current is None:
            return NOT_INTEGER
        result = current + delta
        if not _I64_MIN <= result <= _I64_MAX:
            return _err("ERR increment or decrement would overflow")
        self.keyspace.put(key, str(result).encode(), keep_ttl=True)
        return result

    def _cmd_incr(self, session, args, now):
        return self._add(args[1], 1, now)

    def _cmd_decr(self, session, args, now):
        return self._add(args[1], -1, now)

    def _cmd_incrby(self, session, args, now):
        delta = parse_int(args[2])
        return NOT_INTEGER if delta is None else self._add(args[1], delta, now)

    def _cmd_decrby(self, session, args, now):
        delta = parse_int(args[2])
        if delta is None:
            return NOT_INTEGER
        if delta == _I64_MIN:
            return _err("ERR decrement would overflow")
        return self._add(args[1], -delta, now)

    def _cmd_append(self, session, args, now):
        value, error = self._string(args[1], now)
        if error:
            return error
        new = (value or b"") + args[2]
        if len(new) > MAX_STRING:
            return _err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        self.keyspace.put(args[1], new, keep_ttl=True)
        return len(new)

    def _cmd_strlen(self, session, args, now):
        value, error = self._string(args[1], now)
        return error or len(value or b"")

    # ------------------------------------------------------------ keys
    def _cmd_del_(self, session, args, now):
        now_ms = _ms(now)
        ks = self.keyspace
        return sum(1 for key in args[1:] if ks.contains(key, now_ms) and ks.delete(key))

    def _cmd_exists(self, session, args, now):
        now_ms = _ms(now)
        return sum(1 for key in args[1:] if self.keyspace.contains(key, now_ms))

    def _expire(self, args, now, unit_ms: int, name: str):
        key = args[1]
        amount = parse_int(args[2])
        if amount is None:
            return NOT_INTEGER
        flags = set()
        for opt in args[3:]:
            o = opt.lower()
            if o not in (b"nx", b"xx", b"gt", b"lt"):
                return _err(b"ERR Unsupported option " + opt)
            flags.add(o)
        if b"nx" in flags and flags & {b"xx", b"gt", b"lt"}:
            return _err("ERR NX and XX, GT or LT options at the same time are not compatible")
        if {b"gt", b"lt"} <= flags:
            return _err("ERR GT and LT options at the same time are not compatible")
        now_ms = _ms(now)
        deadline = amount * unit_ms + now_ms
        if not _I64_MIN <= amount * unit_ms <= _I64_MAX or not _I64_MIN <= deadline <= _I64_MAX:
            return _err(f"ERR invalid expire time in '{name}' command")
        ks = self.keyspace
        if not ks.contains(key, now_ms):
            return 0
        current = ks.expires.get(key)
        if b"nx" in flags and current is not None:
            return 0
        if b"xx" in flags and current is None:
            return 0
        if b"gt" in flags and (current is None or deadline <= current):
            return 0
        if b"lt" in flags and current is not None and deadline >= current:
            return 0
        if deadline <= now_ms:
            ks.delete(key)
        else:
            ks.set_deadline(key, deadline)
        return 1

    def _cmd_expire(self, session, args, now):
        return self._expire(args, now, 1000, "expire")

    def _cmd_pexpire(self, session, args, now):
        return self._expire(args, now, 1, "pexpire")

    def _ttl_ms(self, key, now) -> int:
        now_ms = _ms(now)
        if not self.keyspace.contains(key, now_ms):
            return -2
        deadline = self.keyspace.expires.get(key)
        return -1 if deadline is None else max(deadline - now_ms, 0)

    def _cmd_ttl(self, session, args, now):
        ttl = self._ttl_ms(args[1], now)
        return ttl if ttl < 0 else (ttl + 500) // 1000

    def _cmd_pttl(self, session, args, now):
        return self._ttl_ms(args[1], now)

    def _cmd_persist(self, session, args, now):
        if not self.keyspace.contains(args[1], _ms(now)):
            return 0
        return int(self.keyspace.persist(args[1]))

    def _cmd_type(self, session, args, now):
        return Simple(_type_name(self.keyspace.get(args[1], _ms(now))))

    def _cmd_rename(self, session, args, now):
        src, dst = args[1], args[2]
        ks = self.keyspace
        now_ms = _ms(now)
        value = ks.get(src, now_ms)
        if value is None:
            return NO_SUCH_KEY
        if src == dst:
            return OK
        deadline = ks.expires.get(src)
        ks.get(dst, now_ms)  # expire a stale destination first
        ks.delete(dst)
        ks.delete(src)
        ks.put(dst, value)
        if deadline is not None:
            ks.set_deadline(dst, deadline)
        return OK

    def _cmd_keys(self, session, args, now):
        now_ms = _ms(now)
        ks = self.keyspace
        if args[1] == b"*":
            candidates = list(ks.data)
        else:
            rx = glob_to_regex(args[1])
            candidates = [k for k in ks.data if rx.match(k)]
        return [k for k in candidates if not (k in ks.expires and ks.expire_if_needed(k, now_ms))]

    def _cmd_scan(self, session, args, now):
        if not args[1].isdigit() or int(args[1]) >= 2**64:  # an unsigned 64-bit number
            return _err("ERR invalid cursor")
        cursor = int(args[1])
        pattern = kind = None
        count = 10
        i = 2
        while i < len(args):
            opt = args[i].lower()
            if i + 1 >= len(args):
                return SYNTAX
            if opt == b"count":
                count = parse_int(args[i + 1])
                if count is None:
                    return NOT_INTEGER
                if count < 1:
                    return SYNTAX
            elif opt == b"match":
                pattern = args[i + 1]
            elif opt == b"type":
                kind = args[i + 1].lower()
            else:
                return SYNTAX
            i += 2
        next_cursor, keys = self.keyspace.scan(cursor, count, _ms(now))
        if pattern is not None and pattern != b"*":
            rx = glob_to_regex(pattern)
            keys = [k for k in keys if rx.match(k)]
        if kind is not None:
            data = self.keyspace.data
            keys = [k for k in keys if _type_name(data.get(k)) == kind]
        return [str(next_cursor).encode(), keys]

    # ------------------------------------------------------------ lists
    def _list(self, key, now, create=False):
        value = self.keyspace.get(key, _ms(now))
        if value is None:
            if not create:
                return None, None
            value = deque()
            self.keyspace.put(key, value)
            return value, None
        if isinstance(value, deque):
            return value, None
        return None, WRONGTYPE

    def _push(self, args, now, left: bool):
        items, error = self._list(args[1], now, create=True)
        if error:
            return error
        if left:
            items.extendleft(args[2:])
        else:
            items.extend(args[2:])
        self.keyspace.touch(args[1])
        return len(items)

    def _cmd_lpush(self, session, args, now):
        return self._push(args, now, True)

    def _cmd_rpush(self, session, args, now):
        return self._push(args, now, False)

    def _pop(self, args, now, left: bool):
        if len(args) > 3:
            name = "lpop" if left else "rpop"
            return _err(f"ERR wrong number of arguments for '{name}' command")
        count = None
        if len(args) == 3:
            count = parse_int(args[2])
            if count is None or count < 0:
                return NOT_POSITIVE
        items, error = self._list(args[1], now)
        if error:
            return error
        if items is None:
            return None if count is None else NULL_ARRAY
        pop = items.popleft if left else items.pop
        if count is None:
            out = pop()
        else:
            out = [pop() for _ in range(min(count, len(items)))]
        if not items:
            self.keyspace.delete(args[1])
        else:
            self.keyspace.touch(args[1])
        return out

    def _cmd_lpop(self, session, args, now):
        return self._pop(args, now, True)

    def _cmd_rpop(self, session, args, now):
        return self._pop(args, now, False)

    def _cmd_lrange(self, session, args, now):
        start, stop = parse_int(args[2]), parse_int(args[3])
        if start is None or stop is None:
            return NOT_INTEGER
        items, error = self._list(args[1], now)
        if error:
            return error
        if items is None:
            return []
        n = len(items)
        if start < 0:
            start = max(n + start, 0)
        if stop < 0:
            stop = n + stop
        stop = min(stop, n - 1)
        if start > stop or start >= n:
            return []
        if start > n // 2:  # walk from the nearer end
            tail = list(reversed([items[-1 - i] for i in range(n - start)]))
            return tail[: stop - start + 1]
        out = []
        for i, item in enumerate(items):
            if i > stop:
                break
            if i >= start:
                out.append(item)
        return out

    def _cmd_llen(self, session, args, now):
        items, error = self._list(args[1], now)
        return error or len(items or ())

    # ------------------------------------------------------------ hashes
    def _hash(self, key, now, create=False):
        value = self.keyspace.get(key, _ms(now))
        if value is None:
            if not create:
                return None, None
            value = {}
            self.keyspace.put(key, value)
            return value, None
        if isinstance(value, dict):
            return value, None
        return None, WRONGTYPE

    def _cmd_hset(self, session, args, now):
        if len(args) % 2:
            return _err("ERR wrong number of arguments for 'hset' command")
        fields, error = self._hash(args[1], now, create=True)
        if error:
            return error
        added = 0
        for i in range(2, len(args), 2):
            if args[i] not in fields:
                added += 1
            fields[args[i]] = args[i + 1]
        self.keyspace.touch(args[1])
        return added

    def _cmd_hget(self, session, args, now):
        fields, error = self._hash(args[1], now)
        return error or (fields or {}).get(args[2])

    def _cmd_hdel(self, session, args, now):
        fields, error = self._hash(args[1], now)
        if error:
            return error
        if fields is None:
            return 0
        removed = sum(1 for f in args[2:] if fields.pop(f, None) is not None)
        if not fields:
            self.keyspace.delete(args[1])
        elif removed:
            self.keyspace.touch(args[1])
        return removed

    def _cmd_hgetall(self, session, args, now):
        fields, error = self._hash(args[1], now)
        return error or Map(tuple((fields or {}).items()))

    def _cmd_hlen(self, session, args, now):
        fields, error = self._hash(args[1], now)
        return error or len(fields or ())

    def _cmd_hexists(self, session, args, now):
        fields, error = self._hash(args[1], now)
        return error or int(args[2] in (fields or {}))

    # ------------------------------------------------------------ pub/sub
    def _cmd_subscribe(self, session, args, now):
        return self._subscribe(session, args[1:], self.channels, session.channels, b"subscribe")

    def _cmd_psubscribe(self, session, args, now):
        return self._subscribe(session, args[1:], self.patterns, session.patterns, b"psubscribe")

    def _subscribe(self, session, names, registry, mine, kind):
        out = _Effects()
        for name in names:
            if name not in mine:
                mine[name] = None
                registry.setdefault(name, {})[session] = None
            out.append(Reply(session.shape([kind, name, session.subscriptions])))
        return out

    def _cmd_unsubscribe(self, session, args, now):
        return self._unsubscribe(session, args[1:], self.channels, session.channels,
                                 b"unsubscribe")

    def _cmd_punsubscribe(self, session, args, now):
        return self._unsubscribe(session, args[1:], self.patterns, session.patterns,
                                 b"punsubscribe")

    def _unsubscribe(self, session, names, registry, mine, kind):
        out = _Effects()
        if not names:
            names = list(mine)
            if not names:
                return _Effects([Reply(session.shape([kind, None, session.subscriptions]))])
        for name in names:
            if name in mine:
                del mine[name]
                members = registry.get(name)
                if members is not None:
                    members.pop(session, None)
                    if not members:
                        del registry[name]
            out.append(Reply(session.shape([kind, name, session.subscriptions])))
        return out

    def _unsubscribe_all(self, session: Session) -> None:
        for registry, mine in ((self.channels, session.channels),
                               (self.patterns, session.patterns)):
            for name in mine:
                members = registry.get(name)
                if members is not None:
                    members.pop(session, None)
                    if not members:
                        del registry[name]
            mine.clear()

    def _cmd_publish(self, session, args, now):
        channel, message = args[1], args[2]
        out = _Effects()
        for target in self.channels.get(channel, ()):
            out.append(Deliver(target.id, target.shape([b"message", channel, message])))
        for pattern, members in self.patterns.items():
            if members and glob_match(pattern, channel):
                for target in members:
                    out.append(Deliver(target.id, target.shape(
                        [b"pmessage", pattern, channel, message])))
        out.append(Reply(len(out)))
        return out

    # ------------------------------------------------------------ transactions
    def _cmd_multi(self, session, args, now):
        if session.multi is not None:
            return _err("ERR MULTI calls can not be nested")
        session.multi = []
        session.multi_failed = False
        return OK

    def _cmd_discard(self, session, args, now):
        if session.multi is None:
            return _err("ERR DISCARD without MULTI")
        session.multi = None
        session.multi_failed = False
        self.keyspace.unwatch_all(session)
        return OK

    def _cmd_exec_(self, session, args, now):
        if session.multi is None:
            return _err("ERR EXEC without MULTI")
        queued, failed, dirty = session.multi, session.multi_failed, session.dirty
        session.multi = None
        session.multi_failed = False
        self.keyspace.unwatch_all(session)
        if failed:
            return _err("EXECABORT Transaction discarded because of previous errors.")
        if dirty:
            return NULL_ARRAY
        replies = []
        others = _Effects()
        for cmd, cargs in queued:
            for effect in self._run(cmd, session, cargs, now):
                if isinstance(effect, Reply):
                    replies.append(effect.value)
                else:
                    others.append(effect)
        others.append(Reply(replies))
        return others

    def _cmd_watch(self, session, args, now):
        if session.multi is not None:
            return _err("ERR WATCH inside MULTI is not allowed")
        now_ms = _ms(now)
        for key in args[1:]:
            self.keyspace.get(key, now_ms)  # an already expired key must not count as a change
            self.keyspace.watch(session, key)
        return OK

    def _cmd_unwatch(self, session, args, now):
        self.keyspace.unwatch_all(session)
        return OK
