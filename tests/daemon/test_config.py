"""The serve config file: parsing, validation through each subcommand's Options, error positions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.python import usage

from playground import tap
from playground.daemon import config as C
from playground.daemon import serve

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "tcpplay.toml"


def load(text: str, overrides=(), path="x.toml"):
    return C.loads(textwrap.dedent(text), path, overrides)


def error(text: str, overrides=()) -> str:
    with pytest.raises(C.ConfigError) as e:
        load(text, overrides)
    return str(e.value)


GOOD = """\
    stats-interval = 30
    metrics = "9100"

    [proxy.redis]
    listen = "0.0.0.0:6479"
    target = 6379
    quiet = true
    decode = "resp"
    drain-timeout = 2.5

    [echo.e]
    listen = 7000
    """


def test_services_and_globals():
    cfg = load(GOOD)
    assert cfg.stats_interval == 30.0
    assert cfg.metrics == "tcp:9100:interface=127.0.0.1:backlog=1024"
    assert [(s.kind, s.name) for s in cfg.services] == [("proxy", "redis"), ("echo", "e")]
    proxy, echo = cfg.services
    assert proxy.argv == ["--listen=0.0.0.0:6479", "--target=6379", "--quiet", "--decode=resp",
                          "--drain-timeout=2.5"]
    assert proxy.line == 4 and echo.line == 11
    # parsed by the proxy's own Options: normalised exactly as on the command line
    assert proxy.options["listen"] == "tcp:6479:interface=0.0.0.0:backlog=1024"
    assert proxy.options["target"] == "tcp:host=127.0.0.1:port=6379"
    assert proxy.options["quiet"] and proxy.options["drain-timeout"] == 2.5
    assert echo.options["listen"] == "tcp:7000:interface=127.0.0.1:backlog=1024"


def test_same_result_as_the_command_line():
    """One source of truth: the spec's options equal those of the subcommand's own parsing."""
    cfg = load(GOOD)
    for spec in cfg.services:
        top = tap.Options()
        top.parseOptions([spec.kind, *spec.argv])
        assert dict(top.subOptions) == dict(spec.options)


def test_false_flag_is_left_out_and_defaults_apply():
    cfg = load("""\
        [proxy.p]
        target = "6379"
        quiet = false
        """)
    (p,) = cfg.services
    assert p.argv == ["--target=6379"]
    assert p.options["listen"] == "tcp:6479:interface=127.0.0.1:backlog=1024"  # the default
    assert cfg.metrics is None and cfg.stats_interval == 0.0


def test_bad_listen_names_file_line_and_key():
    msg = error("""\
        [proxy.redis]
        target = 6379

        listen = "abc"
        """)
    assert msg.startswith("x.toml:4: [proxy.redis] listen: cannot read 'abc' as an address (")


def test_unknown_key_with_suggestion():
    msg = error("""\
        [echo.e]
        listen = 7000
        max_connections = 3
        """)
    assert msg == ("x.toml:3: [echo.e] max_connections: unknown key for an echo service "
                   "(did you mean 'max-connections'?)")


@pytest.mark.parametrize("line, expected", [
    ('quiet = "yes"', "x.toml:3: [proxy.p] quiet: expected true or false, got 'yes'"),
    ("decode = true", "x.toml:3: [proxy.p] decode: expected a string or a number, got true"),
    ("only = ['GET']", "x.toml:3: [proxy.p] only: expected a string or a number, got an array"),
    ("decode = 'xml'", "x.toml:3: [proxy.p] decode: choose one of auto, resp, http, text, hex, "
                       "none; got 'xml'"),
    ("connect-timeout = -1", "x.toml:3: [proxy.p] connect-timeout: must be >= 0, got '-1'"),
    ("target-ca = 'ca.pem'", "x.toml:3: [proxy.p] target-ca: only applies to a tls: target"),
])
def test_wrong_values(line, expected):
    assert error(f"""\
        [proxy.p]
        target = 6379
        {line}
        """) == expected


@pytest.mark.parametrize("target, why", [
    ("tcp:host=127.0.0.1:port=1:timeout=x", "invalid literal for int() with base 10: 'x'"),
    ("tls:host=db:port=6380:caCertsDir=/nonexistent", "unrecognized keyword arguments"),
    ("tcp6:host=\\\\:\\\\:1:port=6379", "tcp6: is for listening"),
])
def test_a_target_only_twistds_endpoint_parser_refuses_names_file_and_line(target, why):
    # it passed the file's checks (and check-config) and failed once the service was built
    msg = error(f"""\
        [proxy.p]
        listen = 7000
        target = "{target}"
        """)
    assert msg.startswith("x.toml:3: [proxy.p] target: "), msg
    assert why in msg, msg


@pytest.mark.parametrize("value, level", [("true", 1), ("false", 0), ("1", 1), ("2", 2)])
def test_verbose_takes_a_level_as_the_command_line_takes_vv(value, level):
    cfg = load(f"""\
        [proxy.p]
        target = 6379
        verbose = {value}
        """)
    assert cfg.services[0].options.get("verbose", 0) == level


def test_verbose_level_out_of_range():
    assert error("""\
        [proxy.p]
        target = 6379
        verbose = 3
        """) == "x.toml:3: [proxy.p] verbose: expected true, false, or 0 to 2 (-vv), got 3"


def test_missing_required_option_points_at_the_table():
    msg = error("""\
        stats-interval = 1

        [proxy.p]
        listen = 7000
        """)
    assert msg.startswith("x.toml:3: [proxy.p]: target is required")


def test_key_positions_in_awkward_places():
    text = """\
        # a comment with [proxy.x] and listen = 1
        [echo.a]
        listen = 7000   # trailing comment

        [ proxy . "b" ]
        target = 6379
        note = '''
        listen = "not a key, inside a string"
        '''
        """
    msg = error(text)
    assert msg.startswith("x.toml:7: [proxy.b] note: unknown key")
    lines = C.key_lines(textwrap.dedent(text))
    assert lines[("echo", "a", "listen")] == 3
    assert lines[("proxy", "b")] == 5
    assert ("proxy", "b", "listen") not in lines


def test_dotted_keys_and_inline_tables():
    cfg = load("""\
        [proxy]
        r.target = 6379
        r.listen = 7001
        e = { listen = "x:y" }
        """.replace("e = { listen", "[echo.e]\nlisten").replace(' = "x:y" }', " = 7002"))
    assert [s.name for s in cfg.services] == ["r", "e"]
    msg = error("""\
        [proxy]
        r.target = 6379
        r.listen = "nope"
        """)
    assert msg.startswith("x.toml:3: [proxy.r] listen: cannot read 'nope'")


def test_structure_errors():
    assert error('metric = "9100"\n[echo.e]\n').startswith(
        "x.toml:1: metric: unknown global key; the global keys are stats-interval, metrics "
        "(did you mean 'metrics'?)")
    assert error("[proxi.a]\nlisten = 1\n").startswith(
        "x.toml:1: [proxi]: unknown kind of service; choose one of proxy, echo, chat, http, resp")
    assert error("[echo]\nlisten = 7000\n") == (
        "x.toml:2: [echo] listen: a service's keys go in its own table, e.g. [echo.main] then "
        "listen = ...")
    assert error("[echo.a]\n[chat.a]\n").startswith(
        "x.toml:2: [chat.a]: the name 'a' is already used by [echo.a]")
    assert error("[echo.a]\n[echo.b]\n").startswith(
        "x.toml:2: [echo.b] listen: tcp:7000:interface=127.0.0.1:backlog=1024 is already used "
        "by [echo.a]")
    assert error("stats-interval = 5\n") == (
        "x.toml: no services: add a table such as [echo.main] (kinds: proxy, echo, chat, http, "
        "resp)")
    assert error("[echo.a]\nmetrics = 9100\n").startswith(
        "x.toml:2: [echo.a] metrics: set it once at the top of the file")
    assert error('metrics = "nowhere"\n[echo.a]\n').startswith(
        "x.toml:1: metrics: cannot read 'nowhere' as an address")
    assert error("stats-interval = -2\n[echo.a]\n") == (
        "x.toml:1: stats-interval: must be >= 0, got -2")
    assert error("stats-interval = inf\n[echo.a]\n") == (
        "x.toml:1: stats-interval: expected a number of seconds (digits 0-9, a decimal point or "
        "not: 5, 0.25), got inf")
    assert error("stats-interval = 1e-300\n[echo.a]\n") == (  # a log line every turn
        "x.toml:1: stats-interval: must be 0 (never) or at least 0.1 seconds, got 1e-300")
    assert error('[echo."a b"]\n').startswith("x.toml:1: [echo.a b]: a service name is")


def test_numbers_are_ascii_digits_at_their_line():
    """A string value is read as the command line reads it: digits 0-9 only (int() and float()
    took ' 5', '+5' and '1_0'); a TOML number is written out in digits, so 1e-5 is a time."""
    assert error('[echo.a]\nlisten = 7001\nmax-connections = " 5"\n') == (
        "x.toml:3: [echo.a] max-connections: expected a whole number (digits 0-9 only), "
        "got ' 5'")
    assert error('[echo.a]\nidle-timeout = "1_0"\n').startswith(
        "x.toml:2: [echo.a] idle-timeout: expected a number of seconds")
    assert error('stats-interval = "+5"\n[echo.a]\n').startswith(
        "x.toml:1: stats-interval: expected a number of seconds")
    assert error("[echo.a]\nidle-timeout = nan\n").startswith(
        "x.toml:2: [echo.a] idle-timeout: expected a number of seconds")
    cfg = load("[echo.a]\nidle-timeout = 1e-5\nmax-connections = 1_0\n")  # TOML's own forms
    assert cfg.services[0].argv == ["--idle-timeout=0.00001", "--max-connections=10"]
    assert cfg.services[0].options["idle-timeout"] == 1e-5


def test_web_view_address_is_a_listen_address_of_its_own():
    cfg = load("""\
        [proxy.a]
        target = 6379
        web = "8478"
        """)
    assert cfg.services[0].options["web"] == "tcp:8478:interface=127.0.0.1:backlog=1024"
    two = """\
        [proxy.a]
        target = 6379
        web = "8478"

        [proxy.b]
        listen = 6480
        target = 6379
        web = "8478"
        """
    assert error(two) == (
        "x.toml:8: [proxy.b] web: tcp:8478:interface=127.0.0.1:backlog=1024 is already used by "
        "[proxy.a] web")
    assert error(two, ["proxy.b.web=6479"]) == (
        "--set proxy.b.web=6479: [proxy.b] web: tcp:6479:interface=127.0.0.1:backlog=1024 is "
        "already used by [proxy.a]")
    assert error('metrics = "8478"\n[proxy.a]\ntarget = 1\nweb = 8478\n') == (
        "x.toml:4: [proxy.a] web: tcp:8478:interface=127.0.0.1:backlog=1024 is already used by "
        "metrics")
    assert error("[proxy.a]\ntarget = 1\nweb = 9000\n[echo.e]\nlisten = 9000\n") == (
        "x.toml:5: [echo.e] listen: tcp:9000:interface=127.0.0.1:backlog=1024 is already used "
        "by [proxy.a] web")
    assert error("[proxy.a]\ntarget = 1\nweb = \"abc\"\n").startswith(
        "x.toml:3: [proxy.a] web: cannot read 'abc' as an address")


def test_port_0_is_never_taken_twice():
    """Port 0 asks the kernel for a free port: each service gets its own, so two may say it."""
    cfg = load("""\
        [proxy.a]
        listen = "tcp:0:interface=127.0.0.1"
        target = 6379
        web = "tcp:0:interface=127.0.0.1"

        [proxy.b]
        listen = 'tcp6:0:interface=\\:\\:1'
        target = 6379
        web = 'tcp6:port=0:interface=\\:\\:1'

        [echo.e]
        listen = "tcp:0:interface=127.0.0.1"
        """)
    assert [s.name for s in cfg.services] == ["a", "b", "e"]


def test_toml_syntax_error_has_the_line():
    assert error("[echo.a]\nlisten = \n") == "x.toml:2: Invalid value"


def test_nesting_too_deep_names_the_line_not_a_traceback():
    # tomllib recurses per level: 600 nested arrays raised RecursionError through twistd
    deep = "[" * 600 + "]" * 600
    assert error(f"[echo.a]\nlisten = 1\nx = {deep}\n") == (
        "x.toml:3: arrays or inline tables nested too deep")
    assert error("[echo.a]\nx = [\n" + "{a = [\n" * 400 + "\n") == (
        "x.toml:52: arrays or inline tables nested too deep")  # 100 deep
    assert error(GOOD, [f"echo.e.listen={deep}"]) == (
        "--set echo.e.listen: arrays or inline tables nested too deep")


def test_a_file_that_is_no_config_is_refused_unread(tmp_path):
    # the file was read whole: --config /dev/zero until memory ran out (MemoryError through
    # twistd); a file just over the bound stands for it here
    big = tmp_path / "big.toml"
    big.write_text("[echo.e]\nlisten = 1\n" + "#" * (1 << 20))
    with pytest.raises(C.ConfigError, match="more than 1048576 bytes: not a tcpplay config"):
        C.load(str(big))


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Editors on Windows save UTF-8 with a BOM: the file was refused as 'x.toml:1: Invalid
    statement', an error that names nothing the operator can see."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[echo.e]\r\nlisten = 7000\r\n")
    assert [s.name for s in C.load(str(path)).services] == ["e"]


def test_overrides():
    cfg = load(GOOD, ["proxy.redis.listen=7100", "echo.e.max-connections=5", "metrics=9200",
                      "proxy.redis.quiet=false", 'proxy.redis.only="GET,SET"'])
    proxy, echo = cfg.services
    assert proxy.options["listen"] == "tcp:7100:interface=127.0.0.1:backlog=1024"
    assert not proxy.options["quiet"] and proxy.options["only"] == "GET,SET"
    assert echo.options["max-connections"] == 5
    assert cfg.metrics == "tcp:9200:interface=127.0.0.1:backlog=1024"
    # a value that is not TOML is a string
    cfg = load(GOOD, ["proxy.redis.target=localhost:6380"])
    assert cfg.services[0].options["target"] == "tcp:host=localhost:port=6380"


def test_override_errors():
    assert error(GOOD, ["proxy.redis.listen=abc"]).startswith(
        "--set proxy.redis.listen=abc: [proxy.redis] listen: cannot read 'abc' as an address")
    assert error(GOOD, ["proxy.nope.listen=1"]) == (
        "--set proxy.nope.listen=1: x.toml has no [proxy.nope] table")
    assert error(GOOD, ["listen"]).startswith("--set listen: expected KIND.NAME.KEY=VALUE")
    assert error(GOOD, ["a.b=1"]).startswith("--set a.b=1: expected KIND.NAME.KEY=VALUE")


def test_an_override_is_one_value_not_more_toml():
    """A value with more TOML after a line break was read as its first line, the rest dropped
    without a word ('7001' from '7001\\n[echo.zz]\\nlisten = 7002'); it is one string."""
    assert error(GOOD, ["echo.e.listen=7001\n[echo.zz]\nlisten = 7002"]).startswith(
        "--set echo.e.listen=7001\n[echo.zz]\nlisten = 7002: [echo.e] listen: cannot read")
    assert error(GOOD, ["echo.e.listen=7001\nw = 2"]).startswith(
        "--set echo.e.listen=7001\nw = 2: [echo.e] listen: cannot read")


def test_every_option_of_every_kind_is_a_key():
    for kind in C.KINDS:
        names = C.option_names(C.options_class(kind)())
        assert "listen" in names and "help" not in names
    assert set(C.kinds()) == set(C.KINDS)


def test_example_file_parses_and_documents_every_key():
    cfg = C.load(str(EXAMPLE))
    assert {s.kind for s in cfg.services} == set(C.KINDS)
    assert cfg.metrics and cfg.stats_interval == 60
    # every key line is preceded by a comment line
    lines = EXAMPLE.read_text().splitlines()
    for path, number in C.key_lines(EXAMPLE.read_text()).items():
        if len(path) in (1, 3) and "=" in lines[number - 1]:
            before = lines[number - 2].strip()
            assert before.startswith("#"), f"line {number} ({'.'.join(path)}) has no comment"


def test_serve_options():
    o = serve.Options()
    o.parseOptions(["--config", str(EXAMPLE), "--set", "echo.echo.listen=7100",
                    "--set", "metrics=9101"])
    assert o.config.services[1].options["listen"].startswith("tcp:7100:")
    with pytest.raises(usage.UsageError, match="--config FILE is required"):
        serve.Options().parseOptions([])
    with pytest.raises(usage.UsageError, match="--config: cannot read /nonexistent.toml"):
        serve.Options().parseOptions(["--config", "/nonexistent.toml"])
    top = tap.Options()
    top.parseOptions(["serve", "--config", str(EXAMPLE)])
    assert top.subCommand == "serve"


def test_check_command(tmp_path, capsys):
    assert C.main([str(EXAMPLE)]) == 0
    assert "[proxy.redis] --listen=6479" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[echo.a]\nlisten = 'abc'\n")
    assert C.main([str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"{bad}:2: [echo.a] listen: cannot read 'abc'")
    # it has no --config flag: a file it cannot read is named with the command, not "--config"
    missing = tmp_path / "missing.toml"
    assert C.main([str(missing)], prog="tcpplay check-config") == 1
    assert capsys.readouterr().err == (
        f"tcpplay check-config: cannot read {missing}: No such file or directory\n")
    with pytest.raises(SystemExit) as e:  # asked for: not an error
        C.main(["--help"], prog="tcpplay check-config")
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: tcpplay check-config [-h]")
    with pytest.raises(SystemExit) as e:
        C.main([], prog="tcpplay check-config")
    assert e.value.code == 2
    assert "the following arguments are required: FILE" in capsys.readouterr().err
    # --set before the file: it was read as the file's name ("unexpected argument 'x=1'")
    assert C.main(["--set", "echo.echo.listen=7100", str(EXAMPLE)]) == 0
    assert "[echo.echo] --listen=7100" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        C.main([str(EXAMPLE), "--set"], prog="tcpplay check-config")
    assert e.value.code == 2
    assert "argument --set: expected one argument" in capsys.readouterr().err


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_gives_a_config_error_or_a_config(text):
    try:
        C.loads(text, "r.toml")
    except C.ConfigError as e:
        assert str(e).startswith(("r.toml", "--set"))
    C.key_lines(text)  # never raises


def test_unwritable_output_file_names_file_line_and_key(tmp_path):
    msg = error(f"""\
        [proxy.p]
        target = 6379

        pcap = "{tmp_path}/no/such/dir/x.pcap"
        """)
    assert msg == (f"x.toml:4: [proxy.p] pcap: cannot write {tmp_path}/no/such/dir/x.pcap: "
                   "No such file or directory")


@pytest.mark.parametrize("first, second, message", [
    ('pcap = "t.pcap"', 'pcap = "./t.pcap"',
     "x.toml:8: [proxy.b] pcap: ./t.pcap is already written by [proxy.a] pcap"),
    ('json = "t.out"', 'pcap = "t.out"',
     "x.toml:8: [proxy.b] pcap: t.out is already written by [proxy.a] json"),
])
def test_a_pcap_file_has_one_writer(tmp_path, monkeypatch, first, second, message):
    """Two services writing one pcap file would interleave two captures into one that tshark
    reads wrong; JSON lines may share a file (each record is a whole line)."""
    monkeypatch.chdir(tmp_path)
    assert error(f"""\
        [proxy.a]
        target = 6379
        listen = 7001
        {first}

        [proxy.b]
        target = 6379
        {second}
        listen = 7002
        """) == message


def test_json_files_may_be_shared(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load("""\
        [proxy.a]
        target = 6379
        listen = 7001
        json = "all.json"

        [proxy.b]
        target = 6379
        listen = 7002
        json = "./all.json"
        """)
    assert len(cfg.services) == 2


def test_faults_are_an_array_of_specs():
    config = load("""\
        [proxy.redis]
        target = 6379
        fault = ["latency:downstream:200ms,jitter=50ms", "limit_data:upstream:1k"]
        """)
    toxics = config.services[0].options["fault"]
    assert [(t.type, t.stream) for t in toxics] == [("latency", "downstream"),
                                                    ("limit_data", "upstream")]
    assert load('[proxy.p]\ntarget = 6379\nfault = "slicer:10"\n').services[0].options["fault"]


def test_bad_fault_names_file_line_and_key():
    msg = error("""\
        [proxy.redis]
        target = 6379
        fault = ["latency:200ms",
                 "limit_data:lots"]
        """)
    assert msg == ("x.toml:3: [proxy.redis] fault: 'limit_data:lots': limit_data.bytes: "
                   "expected a number, got 'lots'")
    assert error('[proxy.p]\ntarget = 6379\nfault = [1]\n') == (
        "x.toml:3: [proxy.p] fault: expected an array of strings")


@pytest.mark.parametrize("b_target", ["7000", "127.0.0.1:7000", "localhost:7000"])
def test_proxies_whose_targets_go_round_are_refused(b_target):
    # one client made 40 pairs through two proxies targeting each other (20 each, their
    # --max-connections), as a proxy targeting itself would; each alone passed the check
    msg = error(f"""\
        [proxy.a]
        listen = 7000
        target = 7001
        [proxy.b]
        listen = 7001
        target = "{b_target}"
        """)
    assert msg.startswith("x.toml:3: [proxy.a] target: "), msg
    assert "[proxy.a] -> [proxy.b] -> [proxy.a]" in msg, msg


def test_a_chain_of_proxies_and_proxies_of_other_hosts_pass():
    cfg = load("""\
        [proxy.a]
        listen = 7000
        target = 7001
        [proxy.b]
        listen = 7001
        target = 6379
        [proxy.c]
        listen = "[::1]:7002"
        target = "localhost:7002"
        [proxy.d]
        listen = 7003
        target = "127.0.0.2:7000"
        """)
    assert [s.name for s in cfg.services] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("key, value", [("metrics", '"9100"'), ("stats-interval", "30")])
def test_a_proxy_decoding_in_a_child_refuses_the_global_stats(key, value):
    """As ``--decode-process`` refuses ``--metrics``/``--stats-interval``: the command counts
    come from the decoder in this process (with it in a child they would stay empty)."""
    msg = error(f"""\
        {key} = {value}
        [proxy.a]
        listen = 7000
        target = 6379
        decode-process = true
        """)
    assert msg == (f"x.toml:5: [proxy.a] decode-process: the global {key} needs the decoder in "
                   f"this process; drop {key} or decode-process")
    assert load("""\
        [proxy.a]
        listen = 7000
        target = 6379
        decode-process = true
        """).services[0].options["decode-process"]


@pytest.mark.parametrize("first, second", [
    ("7103", "tcp:port=7103:interface=127.0.0.1"),  # the same address, spelled otherwise
    ("7103", "tcp:7103"),  # every IPv4 interface takes 127.0.0.1's port too
    ("0.0.0.0:7103", "127.0.0.1:7103"),
    ("tcp6:7103", "7103"),  # :: is dual stack: it takes the IPv4 addresses as well
    ("unix:/tmp/tcpplay-x.sock", "unix:address=/tmp/tcpplay-x.sock"),
])
def test_two_services_whose_addresses_overlap_are_refused(first, second):
    """Two listeners the kernel would not both bind (the second start-up failed with 'Address
    already in use' after check-config had passed the file): the same address written two
    ways, or an address and every interface of its family, on the same port."""
    text = f"[echo.a]\nlisten = '{first}'\n[echo.b]\nlisten = '{second}'\n"
    assert error(text).startswith("x.toml:4: [echo.b] listen: ")
    assert "is already used by [echo.a], on " in error(text)
    metrics = f"metrics = '{first}'\n[echo.b]\nlisten = '{second}'\n"
    if not first.startswith("unix:"):
        assert "is already used by metrics, on " in error(metrics)


@pytest.mark.parametrize("first, second", [
    ("127.0.0.1:7103", "127.0.0.2:7103"),
    ("0.0.0.0:7103", "tcp6:7103:interface=\\:\\:1"),  # two sockets of one port: both bind
    ("127.0.0.1:7103", "127.0.0.1:7104"),
    ("unix:/tmp/tcpplay-x.sock", "unix:/tmp/tcpplay-y.sock"),
])
def test_services_on_addresses_that_do_not_overlap_pass(first, second):
    cfg = load(f"[echo.a]\nlisten = '{first}'\n[echo.b]\nlisten = '{second}'\n")
    assert [s.name for s in cfg.services] == ["a", "b"]
