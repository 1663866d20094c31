"""The options every server shares: a server's Options states only its own parameters."""

from __future__ import annotations

import pytest
from twisted.python import usage

from playground.common.options import (
    ArgumentParser,
    ServerOptions,
    limit_arguments,
    non_negative_int,
    parameter,
)
from playground.examples import echo
from playground.examples.chat import server as chat
from playground.examples.http import server as http
from playground.examples.resp import server as resp
from playground.proxy import service as proxy

SERVERS = [echo, chat, http, resp]


class Tiny(ServerOptions):
    default_listen = "7100"
    default_idle_timeout = 2.0
    optParameters = [parameter("max-things", 3, "Most things.", non_negative_int)]


@pytest.mark.pure
def test_a_parameter_row_names_its_flag_in_errors():
    row = parameter("max-things", 3, "Most things.", non_negative_int)
    assert row[:4] == ["max-things", None, 3, "Most things."]
    assert row[4]("7") == 7
    with pytest.raises(usage.UsageError, match=r"^--max-things: must be >= 0, got '-1'$"):
        row[4]("-1")
    assert parameter("name", None, "Doc.", short="n") == ["name", "n", None, "Doc."]


@pytest.mark.pure
def test_a_server_states_only_its_own_and_gets_the_shared_ones():
    o = Tiny()
    o.parseOptions([])
    assert o["listen"] == "tcp:7100:interface=127.0.0.1:backlog=1024"
    assert (o["idle-timeout"], o["max-connections"], o["max-things"]) == (2.0, 1000, 3)
    o = Tiny()
    o.parseOptions(["-l", "7200", "--max-things", "9", "--max-connections-per-peer", "2",
                    "--metrics", "7300"])
    assert (o["max-things"], o["max-connections-per-peer"]) == (9, 2)
    assert o["metrics"] == "tcp:7300:interface=127.0.0.1:backlog=1024"
    with pytest.raises(usage.UsageError, match="^--max-things: expected a whole number"):
        Tiny().parseOptions(["--max-things", "many"])
    for seconds in ("inf", "1e400", "-inf", "nan"):  # a time: digits, finite, >= 0
        with pytest.raises(usage.UsageError, match="^--idle-timeout: expected a number of sec"):
            Tiny().parseOptions(["--idle-timeout", seconds])
    with pytest.raises(usage.UsageError, match="^--idle-timeout: must be >= 0, got '-1.5'$"):
        Tiny().parseOptions(["--idle-timeout", "-1.5"])
    with pytest.raises(usage.UsageError, match="^--metrics: needs an address of its own"):
        Tiny().parseOptions(["--metrics", "7100"])
    help_text = Tiny().getUsage()
    assert "Most things. [default: 3]" in help_text
    assert "(0 = never). [default: 2]" in help_text  # a subclass's own default is shown


@pytest.mark.pure
@pytest.mark.parametrize("module", SERVERS + [proxy])
def test_every_server_takes_the_shared_options(module):
    o = module.Options()
    argv = ["--idle-timeout", "4", "--max-connections", "5", "--max-connections-per-peer", "6"]
    o.parseOptions(argv + (["--target", "6379"] if module is proxy else []))
    assert limit_arguments(o) == {"idle_timeout": 4.0, "max_connections": 5, "max_per_peer": 6}


@pytest.mark.memory
@pytest.mark.parametrize("module", SERVERS)
def test_every_servers_factory_gets_the_limits(module):
    from twisted.internet.testing import MemoryReactorClock

    o = module.Options()
    o.parseOptions(["--idle-timeout", "4", "--max-connections", "5",
                    "--max-connections-per-peer", "6"])
    top = module.make_service(o, reactor=MemoryReactorClock())
    factory = _factory(top)
    assert (factory.limits.max_connections, factory.limits.max_per_peer) == (5, 6)
    assert factory.idle_timeout == 4.0


def _factory(svc):
    """The factory of a server's service (a MultiService: of the child that has one)."""
    if hasattr(svc, "factory"):
        return svc.factory
    return next(child.factory for child in svc if hasattr(child, "factory"))


@pytest.mark.pure
@pytest.mark.parametrize("argv, error", [
    # a bad size said "expected a whole number", though the default is "1m"
    (["--max-sendq", "1x"], "--max-sendq: expected a byte count, a whole number with an optional "
                            "k/m/g suffix (64k, 1m, 2g), got '1x'"),
    (["--send-budget", "lots"], "--send-budget: expected a byte count"),
    # the value as given, not what was left once the suffix was cut off ('-1')
    (["--max-sendq", "-1m"], "--max-sendq: must be > 0, got '-1m'"),
    (["--max-sendq", "0k"], "--max-sendq: must be > 0, got '0k'"),
    # every numeric option reads ASCII digits only: no blanks, sign, "_" or exponent
    (["--max-sendq", " 64k"], "--max-sendq: expected a byte count"),
    (["--max-sendq", "+1m"], "--max-sendq: expected a byte count"),
    (["--max-sendq", "1_0k"], "--max-sendq: expected a byte count"),
    (["--max-line", "+512"], "--max-line: expected a whole number"),
    (["--flood-rate", "1e3"], "--flood-rate: expected a number"),
    (["--flood-rate", "2_0"], "--flood-rate: expected a number"),
])
def test_a_bad_number_names_the_flag_and_the_forms_it_takes(argv, error):
    with pytest.raises(usage.UsageError) as e:
        chat.Options().parseOptions(argv)
    assert str(e.value).startswith(error)
    good = chat.Options()
    good.parseOptions(["--max-sendq", "64k"])
    assert good["max-sendq"] == 64 * 1024


NOT_NUMBERS = [" 5", "5 ", "+5", "1_0", "\u0663", "\uff15", "5\n", "0x5", ""]  # int() reads most


@pytest.mark.pure
@pytest.mark.parametrize("text", NOT_NUMBERS)
@pytest.mark.parametrize("flag, expected", [
    ("--max-connections", "expected a whole number (digits 0-9 only)"),
    ("--max-connections-per-peer", "expected a whole number (digits 0-9 only)"),
    ("--idle-timeout", "expected a number of seconds"),
    ("--stats-interval", "expected a number of seconds"),
])
def test_a_number_is_ascii_digits_only(flag, expected, text):
    with pytest.raises(usage.UsageError) as e:
        Tiny().parseOptions([f"{flag}={text}"])
    assert str(e.value) == f"{flag}: {expected}" + str(e.value).partition(expected)[2]
    assert str(e.value).endswith(f"got {text!r}")


@pytest.mark.pure
def test_numbers_in_range_and_seconds_with_a_point():
    o = Tiny()
    o.parseOptions(["--idle-timeout", ".5", "--max-connections", "007", "--stats-interval",
                    "2."])
    assert (o["idle-timeout"], o["max-connections"], o["stats-interval"]) == (0.5, 7, 2.0)
    # many digits are not read as a number of 4,300 digits (int()'s limit, after its work)
    for argv, error in [(["--max-connections", "9" * 5000], "--max-connections: must be at most "
                         "999999999999999999, got '9999999999"),
                        (["--max-connections", "0" * 30 + "5"], None),
                        (["--idle-timeout", "1" + "0" * 12], "--idle-timeout: must be at most "
                         "1000000000 seconds")]:
        o = Tiny()
        if error is None:
            o.parseOptions(argv)
            assert o["max-connections"] == 5
            continue
        with pytest.raises(usage.UsageError) as e:
            o.parseOptions(argv)
        assert str(e.value).startswith(error)


@pytest.mark.pure
@pytest.mark.parametrize("options, flag, largest, too_large, error", [
    (proxy, "--web-memory", "65536", "65537", "must be at most 65536 MiB (64 GiB)"),
    (proxy, "--max-value", str(64 << 30), str((64 << 30) + 1),
     "must be at most 68719476736 bytes (64 GiB)"),
    (proxy, "--max-frame", str(64 << 30), "9" * 19, "must be at most 68719476736 bytes"),
    (chat, "--max-sendq", "64g", "65g", "must be at most 64g"),
    (chat, "--send-budget", "65536m", "65537m", "must be at most 64g"),
    (resp, "--max-bulk", "64gb", str((64 << 30) + 1), "must be at most 64g"),
    (http, "--max-body", str(64 << 30), str((64 << 30) + 1), "must be at most 68719476736"),
    (http, "--max-header-bytes", str(64 << 30), str((64 << 30) + 1), "must be at most"),
])
def test_every_size_has_a_maximum(options, flag, largest, too_large, error):
    """A size bounds memory: one past any real host's (10**17 MiB of web view) bounds nothing."""
    extra = ["--target", "6379"] if options is proxy else []
    o = options.Options()
    o.parseOptions([*extra, flag, largest])
    with pytest.raises(usage.UsageError) as e:
        options.Options().parseOptions([*extra, flag, too_large])
    assert str(e.value) == f"{flag}: {error}" + str(e.value).partition(error)[2]
    assert str(e.value).endswith(f", got {too_large!r}")


@pytest.mark.pure
@pytest.mark.parametrize("command, argv, error", [
    # argparse said "unrecognized arguments: --selct 1", or, when the typo stood for a required
    # option, only "the following arguments are required: --target/-t"
    ("replay", ["x.pcap", "--targte", "6379"],
     "option --targte not recognized (did you mean --target?)"),
    ("replay", ["x.pcap", "-t", "6379", "--selct", "1"],
     "option --selct not recognized (did you mean --select?)"),
    ("replay", ["x.pcap", "-t", "6379", "--speed=2x", "--jsn"],
     "option --jsn not recognized (did you mean --json?)"),
    ("replay", ["x.pcap", "-t", "6379", "--zzz"], "option --zzz not recognized"),
    ("check-config", ["x.toml", "--sett", "a=1"],
     "option --sett not recognized (did you mean --set?)"),
    ("pool", ["--target", "6379", "--requets", "5"],
     "option --requets not recognized (did you mean --requests?)"),
    ("chat-client", ["7000", "--nik", "bob"], "option --nik not recognized (did you mean --nick?)"),
])
def test_every_tools_typo_gets_the_closest_option(command, argv, error, capsys):
    """The argparse tools answer a mistyped option as the twistd subcommands do."""
    import importlib

    from playground.__main__ import COMMANDS

    with pytest.raises(SystemExit) as e:
        importlib.import_module(COMMANDS[command][0]).main(argv, prog=command)
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"{command}: error: {error}"


@pytest.mark.pure
def test_a_server_asked_of_the_tools_is_pointed_to_twistd(capsys):
    """``tcpplay proxy ...`` is what a newcomer types first: one line says how to run it."""
    from playground.__main__ import main

    assert main(["proxy", "--target", "6379", "--fault", "latency:downstream:200ms"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m playground: 'proxy' is a server, run by twistd: "
        "twistd -n tcpplay proxy --target 6379 --fault latency:downstream:200ms"]
    assert main(["demo"]) == 2
    assert capsys.readouterr().err.endswith(": twistd -n tcpplay demo\n")


@pytest.mark.pure
def test_a_mistyped_command_gets_the_closest(capsys):
    from playground.__main__ import main

    assert main(["replai", "x.pcap"]) == 2
    assert capsys.readouterr().err.splitlines()[0].endswith(
        ": unknown command 'replai' (did you mean 'replay'?)")
    assert main(["zzz"]) == 2
    assert capsys.readouterr().err.splitlines()[0].endswith(": unknown command 'zzz'")
    # an abbreviation argparse takes is no typo; "--" ends the options
    parser = ArgumentParser(prog="t")
    parser.add_argument("--target")
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args(["--targ", "6379", "--", "--targte"])
    assert (args.target, args.rest) == ("6379", ["--targte"])


@pytest.mark.pure
@pytest.mark.parametrize("module", [echo, chat, http, resp, proxy])
def test_dash_h_is_help_as_in_the_argparse_tools(module, capsys):
    """``-h`` is what a newcomer types first (``tcpplay-pool -h`` works): the help, exit 0."""
    with pytest.raises(SystemExit) as e:
        module.Options().parseOptions(["-h"])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    assert "--listen" in out and "-h, --help" in out
