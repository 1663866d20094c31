"""Commands on keys whatever their type (Redis's "generic" group): DEL, EXISTS, EXPIRE,
PEXPIRE, TTL, PTTL, PERSIST, TYPE, RENAME, KEYS, SCAN."""

from __future__ import annotations

from playground.codec.values import Simple
from playground.common.digits import decimal
from playground.examples.resp.arguments import I64_MAX, I64_MIN, glob_to_regex, parse_int
from playground.examples.resp.commands import ALL_KEYS, ONE_KEY, command, group
from playground.examples.resp.keyspace import milliseconds
from playground.examples.resp.replies import NO_SUCH_KEY, NOT_INTEGER, OK, SYNTAX, error


def _del(engine, session, args, now):
    now_ms = milliseconds(now)
    ks = engine.keyspace
    return sum(1 for key in args[1:] if ks.contains(key, now_ms) and ks.delete(key))


def _exists(engine, session, args, now):
    now_ms = milliseconds(now)
    return sum(1 for key in args[1:] if engine.keyspace.contains(key, now_ms))


def _expire_in(engine, args, now, unit_ms: int, name: str):
    """EXPIRE and PEXPIRE: the deadline is ``args[2]`` times ``unit_ms`` from now."""
    key = args[1]
    amount = parse_int(args[2])
    if amount is None:
        return NOT_INTEGER
    flags = set()
    for opt in args[3:]:
        o = opt.lower()
        if o not in (b"nx", b"xx", b"gt", b"lt"):
            return error(b"ERR Unsupported option " + opt)
        flags.add(o)
    if b"nx" in flags and flags & {b"xx", b"gt", b"lt"}:
        return error("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {b"gt", b"lt"} <= flags:
        return error("ERR GT and LT options at the same time are not compatible")
    now_ms = milliseconds(now)
    deadline = amount * unit_ms + now_ms
    if not I64_MIN <= amount * unit_ms <= I64_MAX or not I64_MIN <= deadline <= I64_MAX:
        return error(f"ERR invalid expire time in '{name}' command")
    ks = engine.keyspace
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


def _expire(engine, session, args, now):
    return _expire_in(engine, args, now, 1000, "expire")


def _pexpire(engine, session, args, now):
    return _expire_in(engine, args, now, 1, "pexpire")


def _ttl_ms(engine, key, now) -> int:
    """Milliseconds left before ``key`` expires; -1 without a deadline, -2 when missing."""
    now_ms = milliseconds(now)
    if not engine.keyspace.contains(key, now_ms):
        return -2
    deadline = engine.keyspace.expires.get(key)
    return -1 if deadline is None else max(deadline - now_ms, 0)


def _ttl(engine, session, args, now):
    ttl = _ttl_ms(engine, args[1], now)
    return ttl if ttl < 0 else (ttl + 500) // 1000


def _pttl(engine, session, args, now):
    return _ttl_ms(engine, args[1], now)


def _persist(engine, session, args, now):
    if not engine.keyspace.contains(args[1], milliseconds(now)):
        return 0
    return int(engine.keyspace.persist(args[1]))


def _type(engine, session, args, now):
    return Simple(engine.type_name(engine.keyspace.get(args[1], milliseconds(now))))


def _rename(engine, session, args, now):
    src, dst = args[1], args[2]
    ks = engine.keyspace
    now_ms = milliseconds(now)
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


def _keys(engine, session, args, now):
    now_ms = milliseconds(now)
    ks = engine.keyspace
    if args[1] == b"*":
        candidates = list(ks.data)
    else:
        rx = glob_to_regex(args[1])
        candidates = [k for k in ks.data if rx.match(k)]
    return [k for k in candidates if not (k in ks.expires and ks.expire_if_needed(k, now_ms))]


def _scan(engine, session, args, now):
    # an unsigned 64-bit number; its leading zeros are read, as Redis's strtoull reads them
    cursor = decimal(args[1].lstrip(b"0") or b"0", 20) if args[1] else None
    if cursor is None or cursor >= 2**64:
        return error("ERR invalid cursor")
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
    next_cursor, keys = engine.keyspace.scan(cursor, count, milliseconds(now))
    if pattern is not None and pattern != b"*":
        rx = glob_to_regex(pattern)
        keys = [k for k in keys if rx.match(k)]
    if kind is not None:
        data = engine.keyspace.data
        keys = [k for k in keys if engine.type_name(data.get(k)) == kind]
    return [str(next_cursor).encode(), keys]


COMMANDS = group(
    "generic",
    command("del", -2, _del, "write", ALL_KEYS, summary="Deletes one or more keys."),
    command("exists", -2, _exists, "readonly fast", ALL_KEYS, summary="Determines whether one or more keys exist."),
    command("expire", -3, _expire, "write fast", ONE_KEY, summary="Sets the expiration time of a key in seconds."),
    command("pexpire", -3, _pexpire, "write fast", ONE_KEY, summary="Sets the expiration time of a key in milliseconds.", since="2.6.0"),
    command("ttl", 2, _ttl, "readonly fast", ONE_KEY, summary="Returns the expiration time in seconds of a key."),
    command("pttl", 2, _pttl, "readonly fast", ONE_KEY, summary="Returns the expiration time in milliseconds of a key.", since="2.6.0"),
    command("persist", 2, _persist, "write fast", ONE_KEY, summary="Removes the expiration time of a key.", since="2.2.0"),
    command("type", 2, _type, "readonly fast", ONE_KEY, summary="Determines the type of value stored at a key."),
    command("rename", 3, _rename, "write", (1, 2, 1), summary="Renames a key and overwrites the destination."),
    command("keys", 2, _keys, "readonly", summary="Returns all key names that match a pattern."),
    command("scan", -2, _scan, "readonly", summary="Iterates over the key names in the database.", since="2.8.0"),
)
