"""Lists (``deque`` values): LPUSH, RPUSH, LPOP, RPOP (with a count), LRANGE, LLEN."""

from __future__ import annotations

from collections import deque

from playground.examples.resp.arguments import parse_int
from playground.examples.resp.commands import ONE_KEY, ValueType, command, group
from playground.examples.resp.keyspace import milliseconds
from playground.examples.resp.replies import NOT_INTEGER, NOT_POSITIVE, NULL_ARRAY, wrong_arity

VALUE_TYPE = ValueType(b"list", deque)


def _push(engine, args, now, left: bool):
    items, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), deque, create=True)
    if wrong:
        return wrong
    if left:
        items.extendleft(args[2:])
    else:
        items.extend(args[2:])
    engine.keyspace.touch(args[1])
    return len(items)


def _lpush(engine, session, args, now):
    return _push(engine, args, now, True)


def _rpush(engine, session, args, now):
    return _push(engine, args, now, False)


def _pop(engine, args, now, left: bool):
    if len(args) > 3:
        return wrong_arity("lpop" if left else "rpop")
    count = None
    if len(args) == 3:
        count = parse_int(args[2])
        if count is None or count < 0:
            return NOT_POSITIVE
    items, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), deque)
    if wrong:
        return wrong
    if items is None:
        return None if count is None else NULL_ARRAY
    pop = items.popleft if left else items.pop
    if count is None:
        out = pop()
    else:
        out = [pop() for _ in range(min(count, len(items)))]
    engine.keyspace.shrunk(args[1], items)
    return out


def _lpop(engine, session, args, now):
    return _pop(engine, args, now, True)


def _rpop(engine, session, args, now):
    return _pop(engine, args, now, False)


def _lrange(engine, session, args, now):
    start, stop = parse_int(args[2]), parse_int(args[3])
    if start is None or stop is None:
        return NOT_INTEGER
    items, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), deque)
    if wrong:
        return wrong
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


def _llen(engine, session, args, now):
    items, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), deque)
    return wrong or len(items or ())


COMMANDS = group(
    "list",
    command("lpush", -3, _lpush, "write fast", ONE_KEY, summary="Prepends one or more elements to a list."),
    command("rpush", -3, _rpush, "write fast", ONE_KEY, summary="Appends one or more elements to a list."),
    command("lpop", -2, _lpop, "write fast", ONE_KEY, summary="Returns the first elements in a list after removing it."),
    command("rpop", -2, _rpop, "write fast", ONE_KEY, summary="Returns and removes the last elements of a list."),
    command("lrange", 4, _lrange, "readonly", ONE_KEY, summary="Returns a range of elements from a list."),
    command("llen", 2, _llen, "readonly fast", ONE_KEY, summary="Returns the length of a list."),
)
