"""Sets (``MemberSet`` values): SADD, SREM, SMEMBERS, SCARD, SISMEMBER, SMISMEMBER, SPOP,
SRANDMEMBER, SUNION, SINTER, SDIFF.

SPOP and SRANDMEMBER draw from the engine's ``random`` (a seeded ``random.Random``), so a test
that seeds it gets the same members every run. Replies are Redis 7.0's: a set (``~`` in RESP3)
from SMEMBERS, SPOP with a count and the set operations; an array from SRANDMEMBER with a count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from random import Random

from playground.codec.values import Error, Set
from playground.examples.resp.arguments import I64_MAX, I64_MIN, parse_int
from playground.examples.resp.commands import ALL_KEYS, ONE_KEY, ValueType, command, group
from playground.examples.resp.keyspace import milliseconds
from playground.examples.resp.replies import NOT_INTEGER, NOT_POSITIVE, SYNTAX, error

# SRANDMEMBER with a negative count may repeat members: the reply's length is the count, not
# bounded by the set, so the server refuses counts that would build a reply larger than this.
MAX_RANDOM_REPLY = 1_000_000


class MemberSet:
    """A set of members that also picks a random member in O(1): a list of the members and
    each member's index in it (a removal moves the last member into the hole)."""

    __slots__ = ("_index", "_members")

    def __init__(self, members: Iterable[bytes] = ()):
        self._index: dict[bytes, int] = {}
        self._members: list[bytes] = []
        for member in members:
            self.add(member)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: bytes) -> bool:
        return member in self._index

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._members)

    def add(self, member: bytes) -> bool:
        """Add ``member``; True if it was not there."""
        if member in self._index:
            return False
        self._index[member] = len(self._members)
        self._members.append(member)
        return True

    def discard(self, member: bytes) -> bool:
        """Remove ``member``; True if it was there."""
        i = self._index.pop(member, None)
        if i is None:
            return False
        last = self._members.pop()
        if i < len(self._members):
            self._members[i] = last
            self._index[last] = i
        return True

    def pop_random(self, rng: Random) -> bytes:
        member = self._members[rng.randrange(len(self._members))]
        self.discard(member)
        return member

    def choice(self, rng: Random) -> bytes:
        return self._members[rng.randrange(len(self._members))]

    def sample(self, rng: Random, count: int) -> list[bytes]:
        """``count`` distinct members (``count`` <= the set's size)."""
        return rng.sample(self._members, count)


VALUE_TYPE = ValueType(b"set", MemberSet)


def _members(engine, key: bytes, now: float, create: bool = False):
    return engine.keyspace.get_typed(key, milliseconds(now), MemberSet, create=create)


def _sadd(engine, session, args, now):
    members, wrong = _members(engine, args[1], now, create=True)
    if wrong:
        return wrong
    added = sum(1 for m in args[2:] if members.add(m))
    engine.keyspace.touch(args[1])
    return added


def _srem(engine, session, args, now):
    members, wrong = _members(engine, args[1], now)
    if wrong or members is None:
        return wrong or 0
    removed = sum(1 for m in args[2:] if members.discard(m))
    engine.keyspace.shrunk(args[1], members, changed=removed > 0)
    return removed


def _smembers(engine, session, args, now):
    members, wrong = _members(engine, args[1], now)
    return wrong or Set(tuple(members or ()))


def _scard(engine, session, args, now):
    members, wrong = _members(engine, args[1], now)
    return wrong or len(members or ())


def _sismember(engine, session, args, now):
    members, wrong = _members(engine, args[1], now)
    return wrong or int(args[2] in (members or ()))


def _smismember(engine, session, args, now):
    members, wrong = _members(engine, args[1], now)
    if wrong:
        return wrong
    members = members or ()
    return [int(m in members) for m in args[2:]]


def _spop(engine, session, args, now):
    if len(args) > 3:
        return SYNTAX
    count = None
    if len(args) == 3:
        count = parse_int(args[2])
        if count is None or count < 0:
            return NOT_POSITIVE
    members, wrong = _members(engine, args[1], now)
    if wrong:
        return wrong
    if members is None:
        return None if count is None else Set()
    if count == 0:
        return Set()
    if count is not None and count >= len(members):  # all of it: the key goes
        engine.keyspace.delete(args[1])
        return Set(tuple(members))
    rng = engine.random
    if count is None:
        popped = members.pop_random(rng)
    else:
        popped = Set(tuple(members.pop_random(rng) for _ in range(count)))
    engine.keyspace.shrunk(args[1], members)
    return popped


def _srandmember(engine, session, args, now):
    if len(args) > 3:
        return SYNTAX
    count = None
    if len(args) == 3:
        count = parse_int(args[2])
        if count is None:
            return NOT_INTEGER
        if count == I64_MIN:
            return error(f"ERR value is out of range, value must between {-I64_MAX} and {I64_MAX}")
        if count < -MAX_RANDOM_REPLY:
            return error(f"ERR count is out of range, this server repeats at most "
                         f"{MAX_RANDOM_REPLY} members")
    members, wrong = _members(engine, args[1], now)
    if wrong:
        return wrong
    if members is None:
        return None if count is None else []
    rng = engine.random
    if count is None:
        return members.choice(rng)
    if count < 0:
        return [members.choice(rng) for _ in range(-count)]
    if count == 0:
        return []
    if count >= len(members):  # the whole set
        return list(members)
    return members.sample(rng, count)


def _operands(engine, keys: list[bytes], now: float):
    """The sets at ``keys`` (None for a missing key), or WRONGTYPE if any key holds another
    type (every key is checked, as Redis does, before any is combined)."""
    found = []
    for key in keys:
        members, wrong = _members(engine, key, now)
        if wrong:
            return wrong
        found.append(members)
    return found


def _sunion(engine, session, args, now):
    sets = _operands(engine, args[1:], now)
    if isinstance(sets, Error):
        return sets
    out: dict[bytes, None] = {}
    for members in sets:
        out.update(dict.fromkeys(members or ()))
    return Set(tuple(out))


def _sinter(engine, session, args, now):
    sets = _operands(engine, args[1:], now)
    if isinstance(sets, Error):
        return sets
    if any(members is None for members in sets):
        return Set()
    smallest, *others = sorted(sets, key=len)
    return Set(tuple(m for m in smallest if all(m in s for s in others)))


def _sdiff(engine, session, args, now):
    sets = _operands(engine, args[1:], now)
    if isinstance(sets, Error):
        return sets
    first, *others = sets
    others = [s for s in others if s]
    return Set(tuple(m for m in first or () if not any(m in s for s in others)))


COMMANDS = group(
    "set",
    command("sadd", -3, _sadd, "write fast", ONE_KEY, summary="Adds one or more members to a set. Creates the key if it doesn't exist."),
    command("srem", -3, _srem, "write fast", ONE_KEY, summary="Removes one or more members from a set. Deletes the set if the last member was removed."),
    command("smembers", 2, _smembers, "readonly", ONE_KEY, summary="Returns all members of a set."),
    command("scard", 2, _scard, "readonly fast", ONE_KEY, summary="Returns the number of members in a set."),
    command("sismember", 3, _sismember, "readonly fast", ONE_KEY, summary="Determines whether a member belongs to a set."),
    command("smismember", -3, _smismember, "readonly fast", ONE_KEY, summary="Determines whether multiple members belong to a set.", since="6.2.0"),
    command("spop", -2, _spop, "write fast", ONE_KEY, summary="Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    command("srandmember", -2, _srandmember, "readonly", ONE_KEY, summary="Get one or multiple random members from a set"),
    command("sunion", -2, _sunion, "readonly", ALL_KEYS, summary="Returns the union of multiple sets."),
    command("sinter", -2, _sinter, "readonly", ALL_KEYS, summary="Returns the intersect of multiple sets."),
    command("sdiff", -2, _sdiff, "readonly", ALL_KEYS, summary="Returns the difference of multiple sets."),
)
