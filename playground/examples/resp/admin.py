"""Server commands (Redis's "server" group): INFO, DBSIZE, FLUSHDB/FLUSHALL, TIME, the COMMAND
introspection (read from the engine's command table) and CONFIG GET."""

from __future__ import annotations

from playground.codec.values import Map, Set, Simple, Verbatim
from playground.examples.resp.arguments import glob_match
from playground.examples.resp.commands import Command, command, group, subcommand_help
from playground.examples.resp.replies import OK, REDIS_VERSION, SYNTAX

# What CONFIG GET answers unless the engine is given other values.
DEFAULT_CONFIG = {
    b"save": b"",
    b"appendonly": b"no",
    b"databases": b"1",
    b"maxclients": b"10000",
    b"timeout": b"0",
    b"proto-max-bulk-len": b"536870912",
    b"maxmemory": b"0",
    b"maxmemory-policy": b"noeviction",
}


def _info(engine, session, args, now):
    wanted = {a.lower() for a in args[1:]} or {b"default"}
    every = bool(wanted & {b"all", b"everything", b"default"})
    ks = engine.keyspace
    uptime = int(now - (engine.started if engine.started is not None else now))
    sections = {
        b"server": [
            ("redis_version", REDIS_VERSION.decode()),
            ("redis_mode", "standalone"),
            ("tcpplay", "1"),
            ("uptime_in_seconds", uptime),
            ("uptime_in_days", uptime // 86400),
        ],
        b"clients": [
            ("connected_clients", len(engine.sessions)),
            ("maxclients", engine.config[b"maxclients"].decode()),
            ("pubsub_clients", sum(1 for s in engine.sessions.values() if s.subscriptions)),
        ],
        b"stats": [
            ("total_connections_received", engine.connections_received),
            ("total_commands_processed", engine.commands_processed),
            ("expired_keys", ks.expired),
            ("pubsub_channels", len(engine.channels)),
            ("pubsub_patterns", len(engine.patterns)),
        ],
        b"keyspace": [],
    }
    if ks.data:
        sections[b"keyspace"].append(
            ("db0", f"keys={len(ks.data)},expires={len(ks.expires)},avg_ttl=0"))
    out = []
    for name, fields in sections.items():
        if every or name in wanted:
            if out:
                out.append("")
            out.append(f"# {name.decode().capitalize()}")
            out.extend(f"{k}:{v}" for k, v in fields)
    text = ("\r\n".join(out) + "\r\n").encode() if out else b""
    return Verbatim(b"txt", text)


def _dbsize(engine, session, args, now):
    return len(engine.keyspace.data)


def _flush(engine, session, args, now):
    """FLUSHDB and FLUSHALL: the engine has one database."""
    if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"async", b"sync")):
        return SYNTAX
    engine.keyspace.flush()
    return OK


def _time(engine, session, args, now):
    micros = int(round(now * 1_000_000))
    return [str(micros // 1_000_000).encode(), str(micros % 1_000_000).encode()]


# -- COMMAND


def _entry(cmd: Command) -> list:
    """A command as COMMAND INFO describes it."""
    first, last, step = cmd.keys
    return [
        cmd.fullname.encode(),
        cmd.arity,
        Set(tuple(Simple(f.replace("noauth", "no_auth").encode()) for f in cmd.flags)),
        first, last, step,
        Set((Simple(f"@{cmd.group}".encode()),)),
        [],
        [],
        [_entry(s) for s in cmd.subcommands],
    ]


def _doc(cmd: Command) -> Map:
    """A command as COMMAND DOCS describes it."""
    items = [
        (b"summary", cmd.summary.encode()),
        (b"since", cmd.since.encode()),
        (b"group", cmd.group.encode()),
    ]
    if cmd.subcommands:
        items.append((b"subcommands", Map(tuple((s.fullname.encode(), _doc(s))
                                                for s in cmd.subcommands))))
    return Map(tuple(items))


def _named(table: dict[str, Command], args: list[bytes]) -> list[Command | None]:
    """The commands ``COMMAND INFO|DOCS name...`` asks for (``client|id`` for a subcommand;
    None where unknown), or every command when none is named."""
    if len(args) == 2:
        return list(table.values())
    found = []
    for name in args[2:]:
        top, _, sub = name.lower().decode("latin-1").partition("|")
        cmd = table.get(top)
        if cmd is not None and sub:
            cmd = cmd.subcommand(sub)
        found.append(cmd)
    return found


def _command(engine, session, args, now):
    return [_entry(c) for c in engine.commands.values()]


def _command_count(engine, session, args, now):
    return len(engine.commands)


def _command_list(engine, session, args, now):
    if len(args) > 2:
        return SYNTAX
    return [name.encode() for name in engine.commands]


def _command_help(engine, session, args, now):
    return subcommand_help(engine.commands["command"])


def _command_info(engine, session, args, now):
    return [_entry(c) if c is not None else None for c in _named(engine.commands, args)]


def _command_docs(engine, session, args, now):
    return Map(tuple((c.fullname.encode(), _doc(c)) for c in _named(engine.commands, args)
                     if c is not None))


# -- CONFIG


def _config_get(engine, session, args, now):
    found = {}
    for pattern in args[2:]:
        for key, value in engine.config.items():
            if glob_match(pattern.lower(), key):
                found[key] = value
    return Map(tuple(found.items()))


COMMANDS = group(
    "server",
    command("info", -1, _info, summary="Returns information and statistics about the server."),
    command("dbsize", 1, _dbsize, "readonly fast", summary="Returns the number of keys in the database."),
    command("flushdb", -1, _flush, "write", summary="Removes all keys from the current database."),
    command("flushall", -1, _flush, "write", summary="Removes all keys from all databases."),
    command("time", 1, _time, "fast", summary="Returns the server time.", since="2.6.0"),
    command("command", -1, _command, summary="Returns detailed information about all commands.", since="2.8.13", subcommands=(
        command("count", 2, _command_count, summary="Returns a count of commands.", since="2.8.13"),
        command("docs", -2, _command_docs, summary="Returns documentary information about one, multiple or all commands.", since="7.0.0"),
        command("info", -2, _command_info, summary="Returns information about one, multiple or all commands.", since="2.8.13"),
        command("list", -2, _command_list, summary="Returns a list of command names.", since="7.0.0"),
        command("help", 2, _command_help, summary="Returns helpful text about the different subcommands.", since="5.0.0"),
    )),
    command("config", -2, None, summary="A container for server configuration commands.", since="2.0.0", subcommands=(
        command("get", -3, _config_get, summary="Returns the effective values of configuration parameters.", since="2.0.0"),
    )),
)
