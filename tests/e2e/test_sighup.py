"""SIGHUP, an operator's "reload" or a closed terminal's hang-up: tcpplay reloads nothing, so it
says so and goes on. The signal's default action ended the process at once (status 129): no
drain, open connections cut, no "Server Shut Down.", a daemon's pid file left behind. Real
twistd processes."""

from __future__ import annotations

import signal

import pytest

from tests.support.net import free_port
from tests.support.processes import goes_on_after

pytestmark = pytest.mark.twistd

GOING_ON = "SIGHUP: tcpplay does not reload its config"


@pytest.mark.parametrize("twistd_args", [(), ("--logger=playground.daemon.jsonlog.observer",)])
def test_sighup_is_a_log_line_not_the_end(twistd, twistd_args, tmp_path):
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(f"[echo.e]\nlisten = {port}\n")
    proc = twistd(["serve", "--config", str(config)], twistd_args=twistd_args)
    proc.wait_for("echo listening on")
    goes_on_after(proc, signal.SIGHUP, GOING_ON, port)
    assert proc.terminate() == 0, proc.output()
    assert "Server Shut Down." in proc.output()
