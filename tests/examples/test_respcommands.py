"""The RESP engine's command table: one module per Redis group or data type, registered in
``engine.MODULES``; a new data type is one module and one registration."""

from __future__ import annotations

import types

import pytest

from playground.codec.values import Error, Map, Simple
from playground.examples.resp import hashes, lists, sets, sortedsets, strings
from playground.examples.resp.commands import ONE_KEY, ValueType, command, group
from playground.examples.resp.engine import COMMANDS, MODULES, Engine, command_table, value_types
from playground.examples.resp.keyspace import milliseconds
from playground.examples.resp.replies import WRONGTYPE, Reply

pytestmark = pytest.mark.pure


def _all(commands):
    for cmd in commands:
        yield cmd
        yield from _all(cmd.subcommands)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_each_module_files_its_commands_under_one_group(module):
    assert len({cmd.group for cmd in _all(module.COMMANDS)}) == 1


def test_the_table_is_the_modules_commands_in_registration_order():
    assert list(COMMANDS) == [cmd.name for module in MODULES for cmd in module.COMMANDS]
    assert Engine().commands is COMMANDS


def test_every_command_runs_a_handler_or_holds_subcommands():
    for cmd in COMMANDS.values():
        assert callable(cmd.handler) or cmd.subcommands, cmd.name
        for sub in cmd.subcommands:
            assert callable(sub.handler) and sub.parent == cmd.name
            assert sub.fullname == f"{cmd.name}|{sub.name}"


def test_a_name_declared_twice_is_refused():
    with pytest.raises(ValueError, match="'get'"):
        command_table((strings, strings))


def test_the_data_type_modules_declare_their_values():
    assert value_types(MODULES) == (strings.VALUE_TYPE, lists.VALUE_TYPE, hashes.VALUE_TYPE,
                                    sets.VALUE_TYPE, sortedsets.VALUE_TYPE)
    assert [t.name for t in value_types(MODULES)] == [b"string", b"list", b"hash", b"set", b"zset"]


# ------------------------------------------------------------------ adding a data type


def _toyadd(engine, session, args, now):
    members, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), set, create=True)
    if wrong:
        return wrong
    before = len(members)
    members.update(args[2:])
    engine.keyspace.touch(args[1])
    return len(members) - before


def _toycard(engine, session, args, now):
    members, wrong = engine.keyspace.get_typed(args[1], milliseconds(now), set)
    return wrong or len(members or ())


def _toy_sets() -> types.ModuleType:
    """A data-type module as the server's own are written: VALUE_TYPE and COMMANDS."""
    module = types.ModuleType("toy_sets")
    module.VALUE_TYPE = ValueType(b"toyset", set)
    module.COMMANDS = group(
        "toyset",
        command("toyadd", -3, _toyadd, "write fast", ONE_KEY, summary="Adds members to a set."),
        command("toycard", 2, _toycard, "readonly fast", ONE_KEY,
                summary="Returns the number of members in a set."),
    )
    return module


def test_a_new_data_type_is_one_module_and_one_registration():
    engine = Engine(modules=(*MODULES, _toy_sets()))
    session = engine.connect(100.0)

    def run(*args):
        [effect] = engine.execute(session, [a.encode() for a in args], 100.0)
        assert isinstance(effect, Reply)
        return effect.value

    assert run("TOYADD", "s", "a", "b", "a") == 2
    assert run("TOYCARD", "s") == 2
    assert run("TYPE", "s") == Simple(b"toyset")
    assert run("SCAN", "0", "TYPE", "toyset") == [b"0", [b"s"]]
    assert run("GET", "s") == WRONGTYPE
    run("SET", "str", "v")
    assert run("TOYADD", "str", "x") == WRONGTYPE
    assert run("TOYADD", "s") == Error(b"ERR wrong number of arguments for 'toyadd' command")
    assert run("COMMAND", "COUNT") == len(COMMANDS) + 2
    docs = run("COMMAND", "DOCS", "toyadd")
    assert isinstance(docs, Map) and docs.items[0][1].get(b"group") == b"toyset"
    assert run("MULTI") == Simple(b"OK")
    assert run("TOYADD", "s", "c") == Simple(b"QUEUED")
    assert run("EXEC") == [1]
    assert run("DEL", "s") == 1
