"""Connection commands (Redis's "connection" group): PING, ECHO, QUIT, RESET, HELLO, AUTH,
SELECT and the CLIENT subcommands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playground.codec.values import Map, Simple, Verbatim
from playground.examples.resp.arguments import parse_int
from playground.examples.resp.commands import command, group, subcommand_help
from playground.examples.resp.pubsub import unsubscribe_all
from playground.examples.resp.replies import (
    NOT_INTEGER,
    OK,
    PONG,
    REDIS_VERSION,
    SYNTAX,
    WRONGPASS,
    Close,
    Effects,
    Reply,
    error,
    wrong_arity,
)
from playground.examples.resp.transactions import end_transaction

if TYPE_CHECKING:
    from playground.examples.resp.engine import Engine
    from playground.examples.resp.session import Session

_BAD_NAME = error("ERR Client names cannot contain spaces, newlines or special characters.")


def _client_name_ok(name: bytes) -> bool:
    return all(33 <= c <= 126 for c in name)


def _as_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _ping(engine, session, args, now):
    if len(args) > 2:
        return wrong_arity("ping")
    if session.protocol == 2 and session.subscriptions:
        return [b"pong", args[1] if len(args) > 1 else b""]
    return args[1] if len(args) > 1 else PONG


def _echo(engine, session, args, now):
    return args[1]


def _quit(engine, session, args, now):
    return Effects([Reply(OK), Close("QUIT")])


def _reset(engine, session, args, now):
    end_transaction(engine.keyspace, session)
    unsubscribe_all(engine, session)
    session.protocol = 2
    session.name = None
    session.authenticated = engine.password is None
    return Simple(b"RESET")


def _check_password(engine: Engine, user: bytes, password: bytes) -> bool:
    if user != b"default":
        return False
    return engine.password is None or password == engine.password


def _auth(engine, session, args, now):
    if len(args) > 3:
        return SYNTAX
    if len(args) == 2:
        if engine.password is None:
            return error("ERR AUTH <password> called without any password configured for the "
                         "default user. Are you sure your configuration is correct?")
        user, password = b"default", args[1]
    else:
        user, password = args[1], args[2]
    if _check_password(engine, user, password):
        session.authenticated = True
        return OK
    return WRONGPASS


def _hello(engine, session, args, now):
    version = None
    if len(args) >= 2:
        version = parse_int(args[1])
        if version is None:
            return error("ERR Protocol version is not an integer or out of range")
        if version < 2 or version > 3:
            return error("NOPROTO unsupported protocol version")
    user = password = name = None
    j = 2
    while j < len(args):
        more = len(args) - 1 - j
        opt = args[j].lower()
        if opt == b"auth" and more >= 2:
            user, password = args[j + 1], args[j + 2]
            j += 3
        elif opt == b"setname" and more >= 1:
            name = args[j + 1]
            j += 2
        else:
            return error(b"ERR Syntax error in HELLO option '" + args[j] + b"'")
    if user is not None:
        if not _check_password(engine, user, password):
            return WRONGPASS
        session.authenticated = True
    if not session.authenticated:
        return error("NOAUTH HELLO must be called with the client already authenticated, "
                     "otherwise the HELLO AUTH <user> <pass> option can be used to "
                     "authenticate the client and select the RESP protocol version at the same "
                     "time")
    if name is not None:
        if not _client_name_ok(name):
            return _BAD_NAME
        session.name = name or None
    if version is not None:
        session.protocol = version
    return Map((
        (b"server", b"redis"),
        (b"version", REDIS_VERSION),
        (b"proto", session.protocol),
        (b"id", session.id),
        (b"mode", b"standalone"),
        (b"role", b"master"),
        (b"modules", []),
    ))


def _select(engine, session, args, now):
    index = parse_int(args[1])
    if index is None:
        return NOT_INTEGER
    if index != 0:
        return error("ERR DB index is out of range")
    return OK


def _client_setname(engine, session, args, now):
    name = args[2]
    if not _client_name_ok(name):
        return _BAD_NAME
    session.name = name or None
    return OK


def _client_getname(engine, session, args, now):
    return session.name


def _client_id(engine, session, args, now):
    return session.id


def _client_setinfo(engine, session, args, now):
    attr = args[2].lower()
    if attr not in (b"lib-name", b"lib-ver"):
        return error(b"ERR Unrecognized option '" + args[2] + b"'")
    value = args[3]
    if not _client_name_ok(value) and value:
        return error(b"ERR " + attr + b" cannot contain spaces, newlines or special characters.")
    if attr == b"lib-name":
        session.lib_name = value
    else:
        session.lib_ver = value
    return OK


def _client_line(s: Session, now: float) -> bytes:
    flags = ("P" if s.subscriptions else "") + ("x" if s.multi is not None else "") or "N"
    return (
        f"id={s.id} addr={s.peer} laddr={s.local} fd=-1 name={_as_text(s.name or b'')} "
        f"age={int(now - s.created)} idle={int(now - s.last_active)} flags={flags} db=0 "
        f"sub={len(s.channels)} psub={len(s.patterns)} ssub=0 "
        f"multi={-1 if s.multi is None else len(s.multi)} cmd={s.last_command} user=default "
        f"resp={s.protocol} lib-name={_as_text(s.lib_name)} lib-ver={_as_text(s.lib_ver)}\n"
    ).encode()


def _client_info(engine, session, args, now):
    return Verbatim(b"txt", _client_line(session, now))


def _client_list(engine, session, args, now):
    if len(args) > 2:
        return SYNTAX
    lines = b"".join(_client_line(s, now) for s in engine.sessions.values())
    return Verbatim(b"txt", lines)


def _client_help(engine, session, args, now):
    return subcommand_help(engine.commands["client"])


COMMANDS = group(
    "connection",
    command("ping", -1, _ping, "fast", summary="Returns the server's liveliness response."),
    command("echo", 2, _echo, "fast", summary="Returns the given string."),
    command("quit", -1, _quit, "fast noauth", summary="Closes the connection."),
    command("reset", 1, _reset, "fast noauth", summary="Resets the connection.", since="6.2.0"),
    command("hello", -1, _hello, "fast noauth", summary="Handshakes with the Redis server.", since="6.0.0"),
    command("auth", -2, _auth, "fast noauth", summary="Authenticates the connection."),
    command("select", 2, _select, "fast", summary="Changes the selected database."),
    command("client", -2, None, summary="A container for client connection commands.", subcommands=(
        command("setname", 3, _client_setname, "fast", summary="Sets the connection name.", since="2.6.9"),
        command("getname", 2, _client_getname, "fast", summary="Returns the name of the connection.", since="2.6.9"),
        command("id", 2, _client_id, "fast", summary="Returns the unique client ID of the connection.", since="5.0.0"),
        command("setinfo", 4, _client_setinfo, "fast", summary="Sets information specific to the client or connection.", since="7.2.0"),
        command("info", 2, _client_info, "fast", summary="Returns information about the connection.", since="6.2.0"),
        command("list", -2, _client_list, summary="Lists open connections.", since="2.4.0"),
        command("help", 2, _client_help, "fast", summary="Returns helpful text about the different subcommands.", since="5.0.0"),
    )),
)
