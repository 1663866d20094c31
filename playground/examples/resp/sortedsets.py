"""Sorted sets (``SortedSet`` values): ZADD (NX XX GT LT CH INCR), ZINCRBY, ZREM, ZCARD, ZSCORE,
ZRANK, ZREVRANK, ZRANGE (by index, BYSCORE or BYLEX; REV, LIMIT, WITHSCORES) and its older forms
ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZCOUNT, ZPOPMIN, ZPOPMAX.

Scores are doubles read as Redis reads them (``strtod``: ``inf``, ``-inf``, hex floats; no NaN,
no blanks, no overflow) and printed as Redis 7.0 prints them (``%.17g``: ``1.1`` comes back
``1.1000000000000001``): a bulk string in RESP2, a double in RESP3, where pairs of member and
score are nested arrays (ZRANGE ... WITHSCORES, ZPOPMIN with a count).
"""

from __future__ import annotations

import bisect
import math
import re

from playground.examples.resp.arguments import parse_int
from playground.examples.resp.commands import ONE_KEY, ValueType, command, group
from playground.examples.resp.keyspace import milliseconds
from playground.examples.resp.replies import NOT_INTEGER, NOT_POSITIVE, SYNTAX, error

NOT_FLOAT = error("ERR value is not a valid float")
NAN_SCORE = error("ERR resulting score is not a number (NaN)")
NOT_FLOAT_RANGE = error("ERR min or max is not a float")
NOT_LEX_RANGE = error("ERR min or max not valid string range item")


class Score(float):
    """A score in a reply: a double that prints as Redis 7.0 prints one (``%.17g``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "%.17g" % self


class SortedSet:
    """Members ordered by (score, member): a dict member -> score and a sorted list of
    ``(score, member)``.

    Lookups (ZSCORE) are O(1); ranks and range starts are O(log n) (bisect); adding, moving or
    removing a member is O(log n) to find plus O(n) to shift the list: a memmove, some 35 µs
    for a member in the middle of 100,000, fine for a playground (Redis's skip list is
    O(log n)); a range of m members costs O(log n + m), ZPOPMIN/ZPOPMAX O(n).
    """

    __slots__ = ("scores", "order")

    def __init__(self):
        self.scores: dict[bytes, float] = {}
        self.order: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self.order)

    def set(self, member: bytes, score: float) -> None:
        """Add ``member`` or move it to ``score``."""
        score += 0.0  # -0.0 is stored as 0, as Redis does
        old = self.scores.get(member)
        if old is not None:
            if old == score:
                return
            del self.order[bisect.bisect_left(self.order, (old, member))]
        self.scores[member] = score
        bisect.insort(self.order, (score, member))

    def remove(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        del self.order[bisect.bisect_left(self.order, (old, member))]
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        if score is None:
            return None
        return bisect.bisect_left(self.order, (score, member))

    def pop(self, count: int, highest: bool) -> list[tuple[float, bytes]]:
        """Remove and return up to ``count`` entries from the low (or ``highest``) end."""
        if highest:
            cut = max(len(self.order) - count, 0)
            taken = self.order[cut:][::-1]
            del self.order[cut:]
        else:
            taken = self.order[:count]
            del self.order[:count]
        for _, member in taken:
            del self.scores[member]
        return taken


VALUE_TYPE = ValueType(b"zset", SortedSet)

# ---------------------------------------------------------------------------- reading scores

_DECIMAL = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_HEX = r"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
_STRTOD = re.compile(rb"([+-]?)(?:(" + _HEX.encode() + rb")|(" + _DECIMAL.encode()
                     + rb")|(inf(?:inity)?))\Z", re.IGNORECASE)
_C_SPACE = b" \t\n\v\f\r"


def _strtod(text: bytes) -> tuple[float, bool] | None:
    """``text`` read by C's ``strtod`` as a whole: (value, out of range), or None when it is not
    a number (or is NaN)."""
    m = _STRTOD.match(text)
    if m is None:
        return None
    sign, hexa, decimal, infinity = m.groups()
    if infinity is not None:
        return (-math.inf if sign == b"-" else math.inf), False
    value = float(decimal) if decimal is not None else float.fromhex(hexa.decode())
    if sign == b"-":
        value = -value
    if value == 0:  # out of range if the digits were not all zeros (an underflow)
        digits = re.split(rb"[pP]", hexa[2:])[0] if hexa else re.split(rb"[eE]", decimal)[0]
        return value, digits.strip(b"0.") != b""
    return value, math.isinf(value)


def parse_score(text: bytes) -> float | None:
    """A score argument as Redis's ``string2d``: strict, no blanks, no NaN, no overflow."""
    if text.isdigit() and len(text) < 300:  # the common case, and float() reads it as strtod
        return float(text)
    read = _strtod(text)
    if read is None or read[1]:
        return None
    return read[0]


def _range_bound(text: bytes) -> tuple[float, bool] | None:
    """A BYSCORE bound as ``zslParseRange``: ``(`` makes it exclusive; ``strtod`` skips
    leading blanks and reads an empty string as 0; NaN is refused."""
    exclusive = text[:1] == b"("
    body = (text[1:] if exclusive else text).lstrip(_C_SPACE)
    if not body:
        return 0.0, exclusive
    read = _strtod(body)
    return None if read is None else (read[0], exclusive)


def _lex_bound(text: bytes) -> tuple[bytes | None, bool, int] | None:
    """A BYLEX bound: ``[x`` / ``(x`` as (value, exclusive, 0); ``-`` and ``+`` as
    (None, False, -1 / +1), the ends of every range."""
    if text == b"-":
        return None, False, -1
    if text == b"+":
        return None, False, 1
    if text[:1] in (b"[", b"("):
        return text[1:], text[:1] == b"(", 0
    return None


# ---------------------------------------------------------------------------- replies


def _pairs(entries, session, withscores: bool, nested: bool):
    """Members (and scores): flat in RESP2, pairs when ``nested`` in RESP3."""
    if not withscores:
        return [member for _, member in entries]
    if nested and session.protocol == 3:
        return [[member, Score(score)] for score, member in entries]
    out = []
    for score, member in entries:
        out += (member, Score(score))
    return out


def _zset(engine, key: bytes, now: float):
    return engine.keyspace.get_typed(key, milliseconds(now), SortedSet)


# ---------------------------------------------------------------------------- commands

def _zadd(engine, session, args, now, incr: bool = False):
    nx = xx = gt = lt = ch = False
    i, n = 2, len(args)
    while i < n:  # the flags, in any order, until the first score
        opt = args[i].lower()
        if opt == b"nx":
            nx = True
        elif opt == b"xx":
            xx = True
        elif opt == b"gt":
            gt = True
        elif opt == b"lt":
            lt = True
        elif opt == b"ch":
            ch = True
        elif opt == b"incr":
            incr = True
        else:
            break
        i += 1
    pairs = n - i
    if not pairs or pairs % 2:
        return SYNTAX
    if nx and xx:
        return error("ERR XX and NX options at the same time are not compatible")
    if nx + gt + lt > 1:
        return error("ERR GT, LT, and/or NX options at the same time are not compatible")
    if incr and pairs > 2:
        return error("ERR INCR option supports a single increment-element pair")
    scores = [parse_score(s) for s in args[i::2]]
    if None in scores:
        return NOT_FLOAT
    zset, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), SortedSet,
                                            create=not xx)
    if wrong:
        return wrong
    added = updated = processed = 0
    result = None
    if zset is not None:
        for score, member in zip(scores, args[i + 1::2], strict=True):
            current = zset.scores.get(member)
            if current is None:
                if xx:
                    continue
                zset.set(member, score)
                added += 1
            else:
                if nx:
                    continue
                if incr:
                    score += current
                    if math.isnan(score):
                        return NAN_SCORE
                if (lt and score >= current) or (gt and score <= current):
                    continue
                if score != current:
                    zset.set(member, score)
                    updated += 1
            processed += 1
            result = score
    if added or updated:
        engine.keyspace.touch(args[1])
    if incr:
        return Score(result) if processed else None  # a new member: -0 as given
    return added + updated if ch else added


def _zincrby(engine, session, args, now):
    return _zadd(engine, session, args, now, incr=True)


def _zrem(engine, session, args, now):
    zset, wrong = _zset(engine, args[1], now)
    if wrong or zset is None:
        return wrong or 0
    removed = sum(1 for m in args[2:] if zset.remove(m))
    engine.keyspace.shrunk(args[1], zset, changed=removed > 0)
    return removed


def _zcard(engine, session, args, now):
    zset, wrong = _zset(engine, args[1], now)
    return wrong or len(zset or ())


def _zscore(engine, session, args, now):
    zset, wrong = _zset(engine, args[1], now)
    if wrong or zset is None:
        return wrong
    score = zset.scores.get(args[2])
    return None if score is None else Score(score)


def _zrank(engine, session, args, now, reverse: bool = False):
    zset, wrong = _zset(engine, args[1], now)
    if wrong or zset is None:
        return wrong
    rank = zset.rank(args[2])
    if rank is None or not reverse:
        return rank
    return len(zset) - 1 - rank


def _zrevrank(engine, session, args, now):
    return _zrank(engine, session, args, now, reverse=True)


def _by_index(order, start: int, stop: int, reverse: bool):
    n = len(order)
    if start < 0:
        start += n
    if stop < 0:
        stop += n
    start = max(start, 0)
    if start > stop or start >= n:
        return []
    stop = min(stop, n - 1)
    if reverse:
        return order[n - 1 - stop: n - start][::-1]
    return order[start: stop + 1]


def _score_key(entry):
    return entry[0]


def _by_score(order, low, high, reverse: bool, offset: int, limit: int):
    (lo, lo_ex), (hi, hi_ex) = low, high
    if lo > hi or (lo == hi and (lo_ex or hi_ex)):
        return []
    first = (bisect.bisect_right if lo_ex else bisect.bisect_left)(order, lo, key=_score_key)
    end = (bisect.bisect_left if hi_ex else bisect.bisect_right)(order, hi, key=_score_key)
    entries = order[first:end][::-1] if reverse else order[first:end]
    return entries[offset:] if limit < 0 else entries[offset: offset + limit]


def _lex_gte(member: bytes, bound) -> bool:
    value, exclusive, end = bound
    if end:
        return end < 0
    return member > value if exclusive else member >= value


def _lex_lte(member: bytes, bound) -> bool:
    value, exclusive, end = bound
    if end:
        return end > 0
    return member < value if exclusive else member <= value


def _by_lex(order, low, high, reverse: bool, offset: int, limit: int):
    """As Redis walks a small sorted set (members of equal scores are in lexical order; with
    mixed scores the result is what Redis's walk gives): nothing unless the range is not empty,
    the last member is >= min and the first <= max; else from one end to the first member on
    the near side of the range, nothing if it is past the far side; skip ``offset`` members,
    then take up to ``limit`` while they stay inside the far side."""
    lo, hi = low, high
    if lo[2] > 0 or hi[2] < 0:
        return []
    if not lo[2] and not hi[2] and (lo[0] > hi[0] or (lo[0] == hi[0] and (lo[1] or hi[1]))):
        return []
    if not order or not _lex_gte(order[-1][1], lo) or not _lex_lte(order[0][1], hi):
        return []
    near, far = (_lex_lte, hi), (_lex_gte, lo)
    if not reverse:
        near, far = (_lex_gte, lo), (_lex_lte, hi)
    walk = reversed(order) if reverse else iter(order)
    for entry in walk:
        if near[0](entry[1], near[1]):
            if not far[0](entry[1], far[1]):
                return []
            break
    else:
        return []
    rest = [entry, *walk]
    out = []
    for entry in rest[offset:]:
        if len(out) == limit or not far[0](entry[1], far[1]):
            break
        out.append(entry)
    return out


def _zrange(engine, session, args, now, kind: bytes | None = None,
            reverse: bool | None = None):
    """ZRANGE and its older forms, which fix the kind (``rank``, ``byscore``) and the direction:
    then the option that would set it is a syntax error, as in Redis."""
    withscores = False
    offset, limit = 0, -1
    i = 4
    while i < len(args):
        opt = args[i].lower()
        if opt == b"withscores":
            withscores = True
        elif opt == b"limit" and len(args) - i - 1 >= 2:
            offset, limit = parse_int(args[i + 1]), parse_int(args[i + 2])
            if offset is None or limit is None:
                return NOT_INTEGER
            i += 2
        elif opt == b"rev" and reverse is None:
            reverse = True
        elif opt in (b"byscore", b"bylex") and kind is None:
            kind = opt
        else:
            return SYNTAX
        i += 1
    reverse, kind = bool(reverse), kind or b"rank"
    if limit != -1 and kind == b"rank":
        return error("ERR syntax error, LIMIT is only supported in combination with either "
                     "BYSCORE or BYLEX")
    if withscores and kind == b"bylex":
        return error("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    low, high = (args[3], args[2]) if reverse and kind != b"rank" else (args[2], args[3])
    if kind == b"rank":
        start, stop = parse_int(low), parse_int(high)
        if start is None or stop is None:
            return NOT_INTEGER
    elif kind == b"byscore":
        low, high = _range_bound(low), _range_bound(high)
        if low is None or high is None:
            return NOT_FLOAT_RANGE
    else:
        low, high = _lex_bound(low), _lex_bound(high)
        if low is None or high is None:
            return NOT_LEX_RANGE
    zset, wrong = _zset(engine, args[1], now)
    if wrong or zset is None:
        return wrong or []
    if kind == b"rank":
        entries = _by_index(zset.order, start, stop, reverse)
    else:
        if offset < 0 or (offset > 0 and offset >= len(zset)):
            return []
        pick = _by_score if kind == b"byscore" else _by_lex
        entries = pick(zset.order, low, high, reverse, offset, limit)
    return _pairs(entries, session, withscores, nested=True)


def _zrevrange(engine, session, args, now):
    return _zrange(engine, session, args, now, kind=b"rank", reverse=True)


def _zrangebyscore(engine, session, args, now):
    return _zrange(engine, session, args, now, kind=b"byscore", reverse=False)


def _zrevrangebyscore(engine, session, args, now):
    return _zrange(engine, session, args, now, kind=b"byscore", reverse=True)


def _zcount(engine, session, args, now):
    low, high = _range_bound(args[2]), _range_bound(args[3])
    if low is None or high is None:
        return NOT_FLOAT_RANGE
    zset, wrong = _zset(engine, args[1], now)
    if wrong or zset is None:
        return wrong or 0
    return len(_by_score(zset.order, low, high, False, 0, -1))


def _zpop(engine, session, args, now, highest: bool):
    if len(args) > 3:
        return SYNTAX
    count = None
    if len(args) == 3:
        count = parse_int(args[2])
        if count is None or count < 0:
            return NOT_POSITIVE
    zset, wrong = _zset(engine, args[1], now)
    if wrong or zset is None or count == 0:
        return wrong or []
    taken = zset.pop(1 if count is None else count, highest)
    engine.keyspace.shrunk(args[1], zset)
    return _pairs(taken, session, withscores=True, nested=count is not None)


def _zpopmin(engine, session, args, now):
    return _zpop(engine, session, args, now, highest=False)


def _zpopmax(engine, session, args, now):
    return _zpop(engine, session, args, now, highest=True)


COMMANDS = group(
    "sorted-set",
    command("zadd", -4, _zadd, "write fast", ONE_KEY, summary="Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", since="1.2.0"),
    command("zincrby", 4, _zincrby, "write fast", ONE_KEY, summary="Increments the score of a member in a sorted set.", since="1.2.0"),
    command("zrem", -3, _zrem, "write fast", ONE_KEY, summary="Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", since="1.2.0"),
    command("zcard", 2, _zcard, "readonly fast", ONE_KEY, summary="Returns the number of members in a sorted set.", since="1.2.0"),
    command("zscore", 3, _zscore, "readonly fast", ONE_KEY, summary="Returns the score of a member in a sorted set.", since="1.2.0"),
    command("zrank", 3, _zrank, "readonly fast", ONE_KEY, summary="Returns the index of a member in a sorted set ordered by ascending scores.", since="2.0.0"),
    command("zrevrank", 3, _zrevrank, "readonly fast", ONE_KEY, summary="Returns the index of a member in a sorted set ordered by descending scores.", since="2.0.0"),
    command("zrange", -4, _zrange, "readonly", ONE_KEY, summary="Returns members in a sorted set within a range of indexes.", since="1.2.0"),
    command("zrevrange", -4, _zrevrange, "readonly", ONE_KEY, summary="Returns members in a sorted set within a range of indexes in reverse order.", since="1.2.0"),
    command("zrangebyscore", -4, _zrangebyscore, "readonly", ONE_KEY, summary="Returns members in a sorted set within a range of scores.", since="1.0.5"),
    command("zrevrangebyscore", -4, _zrevrangebyscore, "readonly", ONE_KEY, summary="Returns members in a sorted set within a range of scores in reverse order.", since="2.2.0"),
    command("zcount", 4, _zcount, "readonly fast", ONE_KEY, summary="Returns the count of members in a sorted set that have scores within a range.", since="2.0.0"),
    command("zpopmin", -2, _zpopmin, "write fast", ONE_KEY, summary="Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", since="5.0.0"),
    command("zpopmax", -2, _zpopmax, "write fast", ONE_KEY, summary="Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", since="5.0.0"),
)
