"""SIGUSR1, the signal logrotate's ``postrotate`` sends: it rotates a ``--logfile``; a process
whose log goes to no file of its own says there is nothing to rotate and goes on (SIGUSR1's
default action ended it, status 138). Real twistd processes."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from tests.support.net import free_port
from tests.support.processes import goes_on_after
from tests.support.waiting import wait_until

pytestmark = pytest.mark.twistd

NOTHING = "SIGUSR1: no log file to rotate"


def proxy_args() -> tuple[int, list[str]]:
    port, dead = free_port(), free_port()  # its target refuses: a client is accepted, closed
    return port, ["proxy", "--listen", str(port), "--target", str(dead), "--quiet"]


def accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        return True


@pytest.mark.parametrize("twistd_args", [
    (),  # the log on stdout
    ("--logfile=/dev/stderr",),  # a --logfile that is a pipe: appended to, never rotated
    ("--logger=playground.daemon.jsonlog.observer",),  # JSON lines on stdout
])
def test_sigusr1_without_a_log_file_is_a_log_line_not_the_end(twistd, twistd_args):
    port, args = proxy_args()
    proc = twistd(args, twistd_args=twistd_args)
    proc.wait_for("proxy listening on")
    goes_on_after(proc, signal.SIGUSR1, NOTHING, port)
    assert proc.terminate() == 0, proc.output()


def test_sigusr1_still_rotates_a_log_file(twistd, tmp_path):
    log = tmp_path / "proxy.log"
    port, args = proxy_args()
    proc = twistd(args, twistd_args=(f"--logfile={log}",))
    wait_until(lambda: log.exists() and "proxy listening on" in log.read_text(), 15,
               "the listening line in the log file")
    proc.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(f"{log}.1"), 10, "the rotated log file")
    assert accepts(port)
    assert proc.terminate() == 0
    assert NOTHING not in log.read_text() + (tmp_path / "proxy.log.1").read_text()
