"""Transactions: MULTI queues commands (the engine's dispatch does the queueing), EXEC runs them
unless a WATCHed key changed, DISCARD drops them; WATCH and UNWATCH."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playground.examples.resp.commands import ALL_KEYS, command, group
from playground.examples.resp.keyspace import milliseconds
from playground.examples.resp.replies import NULL_ARRAY, OK, Effects, Reply, error

if TYPE_CHECKING:
    from playground.examples.resp.keyspace import Keyspace
    from playground.examples.resp.session import Session

# Commands that run at once inside MULTI instead of being queued.
RUN_AT_ONCE = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})


def end_transaction(keyspace: Keyspace, session: Session) -> None:
    """Leave MULTI (dropping what was queued) and forget the WATCHed keys."""
    session.multi = None
    session.multi_failed = False
    keyspace.unwatch_all(session)


def _multi(engine, session, args, now):
    if session.multi is not None:
        return error("ERR MULTI calls can not be nested")
    session.multi = []
    session.multi_failed = False
    return OK


def _discard(engine, session, args, now):
    if session.multi is None:
        return error("ERR DISCARD without MULTI")
    end_transaction(engine.keyspace, session)
    return OK


def _exec(engine, session, args, now):
    if session.multi is None:
        return error("ERR EXEC without MULTI")
    queued, failed, dirty = session.multi, session.multi_failed, session.dirty
    end_transaction(engine.keyspace, session)
    if failed:
        return error("EXECABORT Transaction discarded because of previous errors.")
    if dirty:
        return NULL_ARRAY
    replies = []
    others = Effects()
    for cmd, cargs in queued:
        for effect in engine.run(cmd, session, cargs, now):
            if isinstance(effect, Reply):
                replies.append(effect.value)
            else:
                others.append(effect)
    others.append(Reply(replies))
    return others


def _watch(engine, session, args, now):
    if session.multi is not None:
        return error("ERR WATCH inside MULTI is not allowed")
    now_ms = milliseconds(now)
    for key in args[1:]:
        engine.keyspace.get(key, now_ms)  # an already expired key must not count as a change
        engine.keyspace.watch(session, key)
    return OK


def _unwatch(engine, session, args, now):
    engine.keyspace.unwatch_all(session)
    return OK


COMMANDS = group(
    "transactions",
    command("multi", 1, _multi, "fast", summary="Starts a transaction.", since="1.2.0"),
    command("exec", 1, _exec, summary="Executes all commands in a transaction.", since="1.2.0"),
    command("discard", 1, _discard, "fast", summary="Discards a transaction.", since="2.0.0"),
    command("watch", -2, _watch, "fast", ALL_KEYS, summary="Monitors changes to keys to determine the execution of a transaction.", since="2.2.0"),
    command("unwatch", 1, _unwatch, "fast", summary="Forgets about watched keys of a transaction.", since="2.2.0"),
)
