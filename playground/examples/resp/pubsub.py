"""Pub/sub: (P)SUBSCRIBE, (P)UNSUBSCRIBE, PUBLISH. The engine holds the registries
(``engine.channels``, ``engine.patterns``: name -> subscribed sessions); PUBLISH returns a
``Deliver`` effect per receiving session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playground.examples.resp.arguments import glob_match
from playground.examples.resp.commands import command, group
from playground.examples.resp.replies import Deliver, Effects, Reply

if TYPE_CHECKING:
    from playground.examples.resp.engine import Engine
    from playground.examples.resp.session import Session

# Commands a RESP2 client in subscribed mode may still send (Redis's list).
ALLOWED_WHEN_SUBSCRIBED = frozenset({"ping", "subscribe", "unsubscribe", "psubscribe",
                                     "punsubscribe", "quit", "reset"})


def _leave(registry: dict, name: bytes, session: Session) -> None:
    members = registry.get(name)
    if members is not None:
        members.pop(session, None)
        if not members:
            del registry[name]


def _join(session, names, registry, mine, kind):
    out = Effects()
    for name in names:
        if name not in mine:
            mine[name] = None
            registry.setdefault(name, {})[session] = None
        out.append(Reply(session.shape([kind, name, session.subscriptions])))
    return out


def _part(session, names, registry, mine, kind):
    out = Effects()
    if not names:
        names = list(mine)
        if not names:
            return Effects([Reply(session.shape([kind, None, session.subscriptions]))])
    for name in names:
        if name in mine:
            del mine[name]
            _leave(registry, name, session)
        out.append(Reply(session.shape([kind, name, session.subscriptions])))
    return out


def unsubscribe_all(engine: Engine, session: Session) -> None:
    """Drop every channel and pattern subscription of ``session`` (RESET, disconnect)."""
    for registry, mine in ((engine.channels, session.channels),
                           (engine.patterns, session.patterns)):
        for name in mine:
            _leave(registry, name, session)
        mine.clear()


def _subscribe(engine, session, args, now):
    return _join(session, args[1:], engine.channels, session.channels, b"subscribe")


def _psubscribe(engine, session, args, now):
    return _join(session, args[1:], engine.patterns, session.patterns, b"psubscribe")


def _unsubscribe(engine, session, args, now):
    return _part(session, args[1:], engine.channels, session.channels, b"unsubscribe")


def _punsubscribe(engine, session, args, now):
    return _part(session, args[1:], engine.patterns, session.patterns, b"punsubscribe")


def _publish(engine, session, args, now):
    channel, message = args[1], args[2]
    out = Effects()
    for target in engine.channels.get(channel, ()):
        out.append(Deliver(target.id, target.shape([b"message", channel, message])))
    for pattern, members in engine.patterns.items():
        if members and glob_match(pattern, channel):
            for target in members:
                out.append(Deliver(target.id, target.shape(
                    [b"pmessage", pattern, channel, message])))
    out.append(Reply(len(out)))
    return out


COMMANDS = group(
    "pubsub",
    command("subscribe", -2, _subscribe, "pubsub", summary="Listens for messages published to channels.", since="2.0.0"),
    command("unsubscribe", -1, _unsubscribe, "pubsub", summary="Stops listening to messages posted to channels.", since="2.0.0"),
    command("psubscribe", -2, _psubscribe, "pubsub", summary="Listens for messages published to channels that match one or more patterns.", since="2.0.0"),
    command("punsubscribe", -1, _punsubscribe, "pubsub", summary="Stops listening to messages published to channels that match one or more patterns.", since="2.0.0"),
    command("publish", 3, _publish, "pubsub fast", summary="Posts a message to a channel.", since="2.0.0"),
)
