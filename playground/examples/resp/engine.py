"""The command engine of the small Redis-protocol server: sessions, dispatch, argument checks.

Pure and clock-free: ``Engine.execute(session, args, now)`` takes one command (a list of
``bytes``) and the current time, and returns a list of effects (module ``replies``): ``Reply(value)``
for the calling client (values in the ``playground.codec.values`` value model),
``Deliver(session_id, value)`` for pub/sub messages to other clients, ``Close(reason)`` when the
client must be disconnected. Keys expire lazily on access and in ``Engine.sweep(now)``, which the
adapter calls periodically. Replies and error texts follow Redis 7
(``ERR wrong number of arguments for 'get' command``).

The commands live in one module per Redis group or data type, each with its ``COMMANDS`` table
(and ``VALUE_TYPE`` for a data type); ``MODULES`` registers them. A new data type is one module
and one line there.
"""

from __future__ import annotations

import random
from types import ModuleType

from playground.codec.values import Error
from playground.examples.resp import (
    admin,
    connection,
    hashes,
    keys,
    lists,
    pubsub,
    sets,
    sortedsets,
    strings,
    transactions,
)
from playground.examples.resp.commands import Command, ValueType
from playground.examples.resp.keyspace import Keyspace, milliseconds
from playground.examples.resp.replies import NOAUTH, QUEUED, Effects, Reply, error, wrong_arity
from playground.examples.resp.session import Session

# The command modules, in the order COMMAND lists their commands.
MODULES: tuple[ModuleType, ...] = (connection, admin, strings, keys, lists, hashes, sets,
                                   sortedsets, pubsub, transactions)


def command_table(modules: tuple[ModuleType, ...]) -> dict[str, Command]:
    """Every module's ``COMMANDS`` by name; a name declared twice is an error."""
    table: dict[str, Command] = {}
    for module in modules:
        for cmd in module.COMMANDS:
            if cmd.name in table:
                raise ValueError(f"{module.__name__} declares {cmd.name!r} again")
            table[cmd.name] = cmd
    return table


def value_types(modules: tuple[ModuleType, ...]) -> tuple[ValueType, ...]:
    """The kinds of value the data-type modules store (TYPE, SCAN ... TYPE)."""
    return tuple(m.VALUE_TYPE for m in modules if hasattr(m, "VALUE_TYPE"))


COMMANDS = command_table(MODULES)  # the server's commands, as COMMAND lists them
DEFAULT_SEED = 0  # SPOP and SRANDMEMBER's choices when no ``rng`` is given: the same every run

_SUBSCRIBED_ONLY = ("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                    "QUIT / RESET are allowed in this context")


class Engine:
    """One in-memory database, its clients, and the commands they run (those of ``modules``).

    ``rng`` is where commands draw random choices (SPOP, SRANDMEMBER): a ``random.Random``
    seeded with ``DEFAULT_SEED`` unless given, so the engine stays deterministic; the server
    passes one seeded from ``os.urandom``.
    """

    def __init__(self, password: bytes | str | None = None, config: dict | None = None,
                 modules: tuple[ModuleType, ...] = MODULES, rng: random.Random | None = None):
        if isinstance(password, str):
            password = password.encode()
        self.password = password or None
        self.commands = COMMANDS if modules is MODULES else command_table(modules)
        self.value_types = value_types(modules)
        self.keyspace = Keyspace()
        self.random = rng if rng is not None else random.Random(DEFAULT_SEED)
        self.sessions: dict[int, Session] = {}
        self.channels: dict[bytes, dict[Session, None]] = {}
        self.patterns: dict[bytes, dict[Session, None]] = {}
        self.config = dict(admin.DEFAULT_CONFIG)
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
        pubsub.unsubscribe_all(self, session)
        self.keyspace.unwatch_all(session)
        session.closed = True
        self.sessions.pop(session.id, None)

    def sweep(self, now: float, limit: int = 10_000) -> int:
        """Expire keys whose time is up (bounded work per call); return how many went."""
        return self.keyspace.sweep(milliseconds(now), limit)

    def type_name(self, value) -> bytes:
        """What TYPE says of a stored value (``none`` for a missing key)."""
        if value is not None:
            for kind in self.value_types:
                if isinstance(value, kind.cls):
                    return kind.name
        return b"none"

    # -- dispatch
    def lookup(self, args: list[bytes]) -> Command | Error:
        name = args[0].lower().decode("latin-1")
        cmd = self.commands.get(name)
        if cmd is None:
            shown = b""
            for arg in args[1:]:
                if len(shown) >= 128:
                    break
                shown += b"'" + arg[: 128 - len(shown)] + b"' "
            return error(b"ERR unknown command '" + args[0][:128] + b"', with args beginning with: "
                         + shown)
        if cmd.subcommands and len(args) >= 2:
            sub = cmd.subcommand(args[1].lower().decode("latin-1"))
            if sub is not None:
                return sub
            return error(b"ERR unknown subcommand '" + args[1][:128] + b"'. Try "
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
        if (cmd.arity > 0 and n != cmd.arity) or n < -cmd.arity or cmd.handler is None:
            return self._reject(session, wrong_arity(cmd.fullname))
        if not session.authenticated and "noauth" not in cmd.flags:
            return self._reject(session, NOAUTH)
        top = cmd.parent or cmd.name
        if (session.protocol == 2 and session.subscriptions
                and top not in pubsub.ALLOWED_WHEN_SUBSCRIBED):
            return self._reject(session, error(_SUBSCRIBED_ONLY.format(cmd.fullname)))
        if session.multi is not None and top not in transactions.RUN_AT_ONCE:
            session.multi.append((cmd, args))
            return [Reply(QUEUED)]
        return self.run(cmd, session, args, now)

    def _reject(self, session: Session, reply: Error) -> list:
        if session.multi is not None:
            session.multi_failed = True
        return [Reply(reply)]

    def run(self, cmd: Command, session: Session, args: list[bytes], now: float) -> list:
        """Run a checked command (``execute`` and EXEC's queue) and return its effects."""
        result = cmd.handler(self, session, args, now)
        if isinstance(result, Effects):
            return list(result)
        return [Reply(result)]
