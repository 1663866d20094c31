"""The command line without a server: bad flags and captures are exit status 2 with one clear
line; masked secrets are named, never printed."""

from __future__ import annotations

import pytest

from playground.codec.encoder import encode_command
from playground.replay.cli import Selection, main, parse_speed
from tests.support.pcaps import Conversation, write_pcap

pytestmark = pytest.mark.pure
NOT_A_SPEED = "is not 1x, Nx (N from 0.000001 to 1000000) or max"  # the bounds, as --help says


def _capture(path, *pairs):
    conv = Conversation()
    frames = conv.handshake()
    for req, rep in pairs:
        frames += [conv.data(True, req), conv.data(False, rep)]
    write_pcap(path, frames + [conv.fin(True), conv.fin(False)])
    return str(path)


@pytest.mark.parametrize("argv, message", [
    (["x.pcap"], "the following arguments are required: --target"),
    (["x.pcap", "--target", "nowhere"], "--target: cannot read 'nowhere' as an address"),
    (["x.pcap", "-t", "6379", "--speed", "fast"], f"--speed: \'fast\' {NOT_A_SPEED}"),
    (["x.pcap", "-t", "6379", "--select", "foo"], "--select: cannot read 'foo'"),
    # these were int()'s "invalid literal" / "Exceeds the limit (4300 digits)", no flag named
    (["x.pcap", "-t", "6379", "--select", "\u00b2"], "--select: cannot read '\u00b2'"),
    (["x.pcap", "-t", "6379", "--select", "port:" + "9" * 5000], "--select: cannot read 'port:99"),
    (["x.pcap", "-t", "6379", "--ignore", "$.a b"], "error: --ignore: '$.a b': cannot read the JSON path"),
    (["x.pcap", "-t", "6379", "--select", "3-1"], "--select: the range '3-1' is backwards (write 1-3)"),
    (["x.pcap", "-t", "6379", "--header", "nocolon"], "--header: 'nocolon' is not 'Name: value'"),
    (["x.pcap", "-t", "6379", "--concurrency", "0"], "--concurrency: must be at least 1, got '0'"),
    # nan passed the check and reached callLater: a traceback, exit 1
    (["x.pcap", "-t", "6379", "--timeout", "nan"], "--timeout: expected a number of seconds"),
    (["x.pcap", "-t", "6379", "--timeout", "inf"], "--timeout: expected a number of seconds"),
    (["x.pcap", "-t", "6379", "--timeout", "0"], "--timeout: must be more than 0 seconds, got '0'"),
    # int() and float() read these: digits 0-9 only, as the other commands' options
    (["x.pcap", "-t", "6379", "--concurrency", " 5"], "--concurrency: expected a whole number"),
    (["x.pcap", "-t", "6379", "--concurrency", "+5"], "--concurrency: expected a whole number"),
    (["x.pcap", "-t", "6379", "--max-connections", "1_0"],
     "--max-connections: expected a whole number"),
    (["x.pcap", "-t", "6379", "--max-bytes", "\u0663"], "--max-bytes: expected a whole number"),
    (["x.pcap", "-t", "6379", "--max-bytes", str((64 << 30) + 1)],
     "--max-bytes: must be at most 68719476736 bytes (64 GiB)"),
    (["x.pcap", "-t", "6379", "--timeout", "1_0"], "--timeout: expected a number of seconds"),
    (["x.pcap", "-t", "6379", "--timeout", " 5"], "--timeout: expected a number of seconds"),
    (["x.pcap", "-t", "6379", "--speed", "\u0663x"], "--speed: '\u0663x' is not 1x, Nx"),
    (["x.pcap", "-t", "6379", "--speed", " 2x"], "--speed: ' 2x' is not 1x, Nx"),
    (["x.pcap", "-t", "6379", "--speed", "0"], f"--speed: \'0\' {NOT_A_SPEED}"),
    (["x.pcap", "-t", "6379", "--speed=-1x"], f"--speed: \'-1x\' {NOT_A_SPEED}"),
    (["x.pcap", "-t", "6379", "--speed", "nan"], f"--speed: \'nan\' {NOT_A_SPEED}"),
    (["x.pcap", "-t", "6379", "--speed", "inf"], f"--speed: \'inf\' {NOT_A_SPEED}"),
    (["x.pcap", "-t", "6379", "--speed", "1e-300"], "--speed: '1e-300' is not 1x, Nx"),
    # these were taken: each recorded gap 10**300 times longer (the replay waited for ever), and
    # a speed float() reads as inf
    (["x.pcap", "-t", "6379", "--speed", "0." + "0" * 299 + "1x"],
     "--speed: must be at least 0.000001x (each recorded gap 1000000 times longer), got '0.0"),
    (["x.pcap", "-t", "6379", "--speed", "0.0000009x"],
     "--speed: must be at least 0.000001x (each recorded gap 1000000 times longer), "
     "got '0.0000009x'"),
    (["x.pcap", "-t", "6379", "--speed", "1" + "0" * 400 + "x"],
     "--speed: must be at most 1000000x (max: no waiting at all), got '100000"),
])
def test_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv, prog="tcpplay-replay")
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_capture_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 10)
    assert main([str(tmp_path / "bad.pcap"), "-t", "6379"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcpplay-replay: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_masked_password_stops_the_replay_and_is_never_printed(tmp_path, capsys):
    path = _capture(tmp_path / "auth.pcap", (encode_command("AUTH", "*" * 8), b"+OK\r\n"),
                    (encode_command("GET", "k"), b"$-1\r\n"))
    assert main([path, "-t", "6379"]) == 2
    err = capsys.readouterr().err
    assert "connection 1: #1 AUTH (redacted): the capture masks its password; give --auth" in err


def test_nothing_selected(tmp_path, capsys):
    path = _capture(tmp_path / "s.pcap", (encode_command("PING"), b"+PONG\r\n"))
    assert main([path, "-t", "6379", "--select", "http"]) == 2
    assert "no connection with requests is selected (1 in the capture)" in capsys.readouterr().err


def test_a_gap_is_reported_not_replayed(tmp_path, capsys):
    conv = Conversation()
    frames = conv.handshake()
    frames.append(conv.data(True, encode_command("PING")))
    conv.data(False, b"+PO")  # never captured
    frames.append(conv.data(False, b"NG\r\n"))
    write_pcap(tmp_path / "gap.pcap", frames)
    assert main([str(tmp_path / "gap.pcap"), "-t", "6379"]) == 1
    out = capsys.readouterr().out
    assert ("connection 1 10.0.0.1:40000 -> 10.0.0.2:6379 (resp): not replayed: the capture "
            "misses 3 bytes of the server stream at offset 0") in out


def test_speed_and_selection():
    assert parse_speed("1x") == 1.0 and parse_speed("2.5X") == 2.5 and parse_speed("max") is None
    assert parse_speed("0.000001x") == 1e-6 and parse_speed("1000000") == 1e6  # the bounds
    sel = Selection.parse(["1,3-4", "port:8080,redis"])
    assert sel.numbers == {1} and sel.ranges == ((3, 4),) and sel.ports == {8080}
    assert sel.protocols == {"resp"} and Selection.parse([]).everything


def test_other_protocols_are_skipped_and_do_not_count(tmp_path, capsys):
    conv = Conversation(server=("10.0.0.2", 25))
    frames = conv.handshake() + [conv.data(True, b"EHLO there\r\n")]
    conv.data(True, b"lost\r\n")  # a hole in a text connection: nothing to check there
    frames.append(conv.data(True, b"QUIT\r\n"))
    write_pcap(tmp_path / "smtp.pcap", frames)
    assert main([str(tmp_path / "smtp.pcap"), "-t", "6379"]) == 0
    out = capsys.readouterr().out
    assert "(text): not replayed: the capture misses 6 bytes of the client stream" in out
    assert out.splitlines()[-3].endswith("skipped")
