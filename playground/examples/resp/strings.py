"""Strings (``bytes`` values): GET, SET and its options, MGET, MSET, SETNX, GETDEL, INCR/DECR(BY),
APPEND, STRLEN."""

from __future__ import annotations

from playground.examples.resp.arguments import I64_MAX, I64_MIN, parse_int
from playground.examples.resp.commands import ALL_KEYS, ONE_KEY, ValueType, command, group
from playground.examples.resp.keyspace import milliseconds
from playground.examples.resp.replies import (
    NOT_INTEGER,
    OK,
    SYNTAX,
    WRONGTYPE,
    error,
    wrong_arity,
)

VALUE_TYPE = ValueType(b"string", bytes)
MAX_STRING = 512 * 1024 * 1024  # proto-max-bulk-len: no string value grows beyond this


def _get(engine, session, args, now):
    value, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), bytes)
    return wrong or value


def _deadline(kind: bytes, amount: int, now_ms: int) -> int | None:
    """Absolute deadline in ms for EX/PX/EXAT/PXAT ``amount``; None on overflow."""
    ms = amount * 1000 if kind in (b"ex", b"exat") else amount
    if kind in (b"ex", b"px"):
        ms += now_ms
    return ms if I64_MIN <= ms <= I64_MAX else None


def _set(engine, session, args, now):
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
    now_ms = milliseconds(now)
    deadline = None
    if expire_kind is not None:
        amount = parse_int(expire_arg)
        if amount is None:
            return NOT_INTEGER
        deadline = _deadline(expire_kind, amount, now_ms)
        if deadline is None or amount <= 0:
            return error("ERR invalid expire time in 'set' command")
    ks = engine.keyspace
    old = ks.get(key, now_ms)
    if get and old is not None and not isinstance(old, bytes):
        return WRONGTYPE
    if (cond == b"nx" and old is not None) or (cond == b"xx" and old is None):
        return old if get else None
    ks.put(key, value, keep_ttl=keep_ttl)  # without KEEPTTL, put drops an old deadline
    if deadline is not None:
        ks.set_deadline(key, deadline)
    return old if get else OK


def _mget(engine, session, args, now):
    now_ms = milliseconds(now)
    out = []
    for key in args[1:]:
        value = engine.keyspace.get(key, now_ms)
        out.append(value if isinstance(value, bytes) else None)
    return out


def _mset(engine, session, args, now):
    if len(args) % 2 == 0:
        return wrong_arity("mset")
    for i in range(1, len(args), 2):
        engine.keyspace.put(args[i], args[i + 1])
    return OK


def _setnx(engine, session, args, now):
    if engine.keyspace.contains(args[1], milliseconds(now)):
        return 0
    engine.keyspace.put(args[1], args[2])
    return 1


def _getdel(engine, session, args, now):
    value, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), bytes)
    if wrong:
        return wrong
    if value is not None:
        engine.keyspace.delete(args[1])
    return value


def _add(engine, key: bytes, delta: int, now: float):
    """INCR and friends: add ``delta`` to the integer at ``key`` (0 when missing)."""
    value, wrong = engine.keyspace.get_typed(key, milliseconds(now), bytes)
    if wrong:
        return wrong
    current = 0 if value is None else parse_int(value)
    if current is None:
        return NOT_INTEGER
    result = current + delta
    if not I64_MIN <= result <= I64_MAX:
        return error("ERR increment or decrement would overflow")
    engine.keyspace.put(key, str(result).encode(), keep_ttl=True)
    return result


def _incr(engine, session, args, now):
    return _add(engine, args[1], 1, now)


def _decr(engine, session, args, now):
    return _add(engine, args[1], -1, now)


def _incrby(engine, session, args, now):
    delta = parse_int(args[2])
    return NOT_INTEGER if delta is None else _add(engine, args[1], delta, now)


def _decrby(engine, session, args, now):
    delta = parse_int(args[2])
    if delta is None:
        return NOT_INTEGER
    if delta == I64_MIN:
        return error("ERR decrement would overflow")
    return _add(engine, args[1], -delta, now)


def _append(engine, session, args, now):
    value, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), bytes)
    if wrong:
        return wrong
    new = (value or b"") + args[2]
    if len(new) > MAX_STRING:
        return error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    engine.keyspace.put(args[1], new, keep_ttl=True)
    return len(new)


def _strlen(engine, session, args, now):
    value, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), bytes)
    return wrong or len(value or b"")


COMMANDS = group(
    "string",
    command("get", 2, _get, "readonly fast", ONE_KEY, summary="Returns the string value of a key."),
    command("set", -3, _set, "write", ONE_KEY, summary="Sets the string value of a key."),
    command("mget", -2, _mget, "readonly fast", ALL_KEYS, summary="Atomically returns the string values of one or more keys."),
    command("mset", -3, _mset, "write", (1, -1, 2), summary="Atomically creates or modifies the string values of one or more keys.", since="1.0.1"),
    command("setnx", 3, _setnx, "write fast", ONE_KEY, summary="Set the string value of a key only when the key doesn't exist."),
    command("getdel", 2, _getdel, "write fast", ONE_KEY, summary="Returns the string value of a key after deleting the key.", since="6.2.0"),
    command("incr", 2, _incr, "write fast", ONE_KEY, summary="Increments the integer value of a key by one."),
    command("incrby", 3, _incrby, "write fast", ONE_KEY, summary="Increments the integer value of a key by a number."),
    command("decr", 2, _decr, "write fast", ONE_KEY, summary="Decrements the integer value of a key by one."),
    command("decrby", 3, _decrby, "write fast", ONE_KEY, summary="Decrements a number from the integer value of a key."),
    command("append", 3, _append, "write fast", ONE_KEY, summary="Appends a string to the value of a key.", since="2.0.0"),
    command("strlen", 2, _strlen, "readonly fast", ONE_KEY, summary="Returns the length of a string value.", since="2.2.0"),
)
