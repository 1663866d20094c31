"""Hashes (``dict`` values, field -> value): HSET, HGET, HDEL, HGETALL, HLEN, HEXISTS."""

from __future__ import annotations

from playground.codec.values import Map
from playground.examples.resp.commands import ONE_KEY, ValueType, command, group
from playground.examples.resp.keyspace import milliseconds
from playground.examples.resp.replies import wrong_arity

VALUE_TYPE = ValueType(b"hash", dict)


def _hset(engine, session, args, now):
    if len(args) % 2:
        return wrong_arity("hset")
    fields, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), dict, create=True)
    if wrong:
        return wrong
    added = 0
    for i in range(2, len(args), 2):
        if args[i] not in fields:
            added += 1
        fields[args[i]] = args[i + 1]
    engine.keyspace.touch(args[1])
    return added


def _hget(engine, session, args, now):
    fields, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), dict)
    return wrong or (fields or {}).get(args[2])


def _hdel(engine, session, args, now):
    fields, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), dict)
    if wrong:
        return wrong
    if fields is None:
        return 0
    removed = sum(1 for f in args[2:] if fields.pop(f, None) is not None)
    engine.keyspace.shrunk(args[1], fields, changed=removed > 0)
    return removed


def _hgetall(engine, session, args, now):
    fields, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), dict)
    return wrong or Map(tuple((fields or {}).items()))


def _hlen(engine, session, args, now):
    fields, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), dict)
    return wrong or len(fields or ())


def _hexists(engine, session, args, now):
    fields, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), dict)
    return wrong or int(args[2] in (fields or {}))


COMMANDS = group(
    "hash",
    command("hset", -4, _hset, "write fast", ONE_KEY, summary="Creates or modifies the value of a field in a hash.", since="2.0.0"),
    command("hget", 3, _hget, "readonly fast", ONE_KEY, summary="Returns the value of a field in a hash.", since="2.0.0"),
    command("hdel", -3, _hdel, "write fast", ONE_KEY, summary="Deletes one or more fields and their values from a hash.", since="2.0.0"),
    command("hgetall", 2, _hgetall, "readonly", ONE_KEY, summary="Returns all fields and values in a hash.", since="2.0.0"),
    command("hlen", 2, _hlen, "readonly fast", ONE_KEY, summary="Returns the number of fields in a hash.", since="2.0.0"),
    command("hexists", 3, _hexists, "readonly fast", ONE_KEY, summary="Determines whether a field exists in a hash.", since="2.0.0"),
)
