"""SIGHUP, an operator's "reload" or a closed terminal's hang-up: tcpplay reloads nothing, so it
says so and goes on. The signal's default action ended the process at once (status 129): no
drain, open connections cut, no "Server Shut Down.", a daemon's pid file left behind. Real
twistd processes."""

from __future__ import annotations

import signal
import socket

import pytest

from tests.support.net import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.twistd

GOING_ON = "SIGHUP: tcpplay does not reload its config"


def accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        return True


@pytest.mark.parametrize("twistd_args", [(), ("--logger=playground.daemon.jsonlog.observer",)])
def test_sighup_is_a_log_line_not_the_end(twistd, twistd_args, tmp_path):
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(f"[echo.e]\nlisten = {port}\n")
    proc = twistd(["serve", "--config", str(config)], twistd_args=twistd_args)
    proc.wait_for("echo listening on")
    proc.proc.send_signal(signal.SIGHUP)
    proc.wait_for(GOING_ON, timeout=10)
    assert proc.proc.poll() is None
    assert accepts(port)
    proc.proc.send_signal(signal.SIGHUP)  # again: a line each time, still running
    wait_until(lambda: proc.output().count(GOING_ON) == 2, 10, "the second SIGHUP's line")
    assert proc.terminate() == 0, proc.output()
    assert "Server Shut Down." in proc.output()
