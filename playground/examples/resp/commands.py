"""How a module declares its commands: ``Command`` (name, arity, handler, flags, key positions,
the docs COMMAND returns) and ``group``, which files a module's commands under a Redis group.

A data-type module (``strings``, ``lists`` ...) defines handlers
``handler(engine, session, args, now) -> reply | Effects`` and one ``COMMANDS = group(...)``
table, plus ``VALUE_TYPE`` when it adds a kind of value; ``engine.MODULES`` lists the modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from playground.codec.values import Simple

if TYPE_CHECKING:
    from playground.examples.resp.engine import Engine
    from playground.examples.resp.session import Session

Handler = Callable[["Engine", "Session", list, float], Any]

# Key positions as COMMAND reports them: first key, last key (-1 = the last argument), step.
NO_KEYS = (0, 0, 0)
ONE_KEY = (1, 1, 1)
ALL_KEYS = (1, -1, 1)


@attrs.frozen
class Command:
    """A command's metadata (arity as Redis counts it: negative = at least)."""

    name: str
    arity: int
    handler: Handler | None  # None: a container of subcommands (CLIENT, CONFIG)
    flags: tuple = ()
    keys: tuple = NO_KEYS
    group: str = "generic"
    summary: str = ""
    since: str = "1.0.0"
    subcommands: tuple = ()
    parent: str = ""

    @property
    def fullname(self) -> str:
        return f"{self.parent}|{self.name}" if self.parent else self.name

    def subcommand(self, name: str) -> Command | None:
        """The subcommand called ``name`` (lower case), if there is one."""
        return next((s for s in self.subcommands if s.name == name), None)


@attrs.frozen
class ValueType:
    """A kind of value a data-type module stores: its TYPE name and its Python class."""

    name: bytes
    cls: type


def command(name: str, arity: int, handler: Handler | None, flags: str = "",
            keys: tuple = NO_KEYS, summary: str = "", since: str = "1.0.0",
            subcommands: tuple = ()) -> Command:
    """A ``Command``; ``flags`` as Redis spells them, space-separated."""
    subs = tuple(attrs.evolve(s, parent=name) for s in subcommands)
    return Command(name, arity, handler, tuple(flags.split()), keys, summary=summary, since=since,
                   subcommands=subs)


def group(name: str, *commands: Command) -> tuple[Command, ...]:
    """``commands`` (and their subcommands) filed under the Redis group ``name``."""
    return tuple(attrs.evolve(c, group=name, subcommands=group(name, *c.subcommands))
                 for c in commands)


def subcommand_help(cmd: Command) -> list[Simple]:
    """The reply to ``CLIENT HELP`` / ``COMMAND HELP``: each subcommand and its summary."""
    lines = [f"{cmd.name.upper()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"]
    for s in cmd.subcommands:
        lines.append(f"{s.name.upper()}")
        lines.append(f"    {s.summary}")
    return [Simple(line.encode()) for line in lines]
