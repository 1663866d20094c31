"""A proxy whose target is its own listen address: refused at option time where the addresses
say so (``proxy``, a ``serve`` config), closed at its first connect where only the connect can
tell (a name or an address that leads back to the listener)."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from twisted.python import usage

from playground.daemon import config
from playground.proxy.service import Options
from tests.support.net import free_port
from tests.support.paths import ROOT, TWISTD


def parse(*argv) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


@pytest.mark.pure
@pytest.mark.parametrize("argv", [
    ["--listen", "16555", "--target", "16555"],
    ["--target", "6479"],  # the default --listen
    ["--listen", "0.0.0.0:16555", "--target", "localhost:16555"],
    ["--listen", "tcp:16555:interface=::1", "--target", "[::1]:16555"],
    ["--listen", "unix:/tmp/tcpplay-self.sock", "--target", "unix:/tmp/tcpplay-self.sock"],
])
def test_a_target_that_is_the_listen_address_is_a_usage_error(argv):
    with pytest.raises(usage.UsageError, match=r"^--target: .* is the proxy's own --listen "
                                               r"address \(.*\): every connection would"):
        parse(*argv)


@pytest.mark.pure
@pytest.mark.parametrize("argv", [
    ["--listen", "16555", "--target", "16556"],
    ["--listen", "0", "--target", "16555"],
    ["--listen", "127.0.0.2:16555", "--target", "16555"],
    ["--listen", "16555", "--target", "redis.example:16555"],
])
def test_a_target_elsewhere_is_taken(argv):
    assert parse(*argv).target.port in (16555, 16556)


@pytest.mark.pure
def test_a_config_proxy_whose_target_is_its_listen_names_file_and_line():
    text = textwrap.dedent("""\
        [echo.e]
        listen = 7000

        [proxy.loop]
        listen = "0.0.0.0:16555"
        target = "127.0.0.1:16555"
        """)
    with pytest.raises(config.ConfigError) as e:
        config.loads(text, "x.toml")
    assert str(e.value).startswith(
        "x.toml:6: [proxy.loop] target: 127.0.0.1:16555 is the proxy's own listen address "
        "(tcp:16555:interface=0.0.0.0:backlog=1024): every connection would connect to itself")


@pytest.mark.twistd
def test_twistd_refuses_a_target_that_is_the_listen_address_before_listening():
    port = free_port()
    result = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--listen", str(port),
         "--target", str(port)],
        capture_output=True, text=True, timeout=30, cwd=str(ROOT))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"twistd tcpplay proxy: --target: {port} is the proxy's own "
                            f"--listen address (tcp:{port}:interface=127.0.0.1"), result.stderr
