"""The layer markers are enforced (tests/conftest.py): a test without one stops the run, and a test
doing what its layer rules out fails, even when the code under test swallows the refusal."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys

import pytest

from tests.support.layers import REFUSED, LayerGuard, LayerViolation, guard, starts_twistd
from tests.support.paths import ROOT, TWISTD


@contextlib.contextmanager
def refused(match: str):
    """The guard refuses what the block does, and records it; forget it (it was expected)."""
    with pytest.raises(LayerViolation, match=match):
        yield
    assert guard.take()


@pytest.mark.pure
def test_a_pure_test_cannot_open_a_socket():
    with refused("'pure' test uses a socket"):
        socket.socket()


@pytest.mark.pure
def test_a_pure_test_cannot_start_a_process():
    with refused("'pure' test starts a process"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


@pytest.mark.memory
def test_a_memory_test_cannot_start_a_process_or_open_a_socket():
    with refused("'memory' test starts a process"):
        subprocess.Popen(["true"])
    with refused("'memory' test uses a socket"):
        socket.create_connection(("127.0.0.1", 9))


@pytest.mark.real
def test_a_real_test_cannot_start_twistd():
    with refused("'real' test starts twistd"):
        subprocess.run(["bash", "-c", 'exec "$@"', "bash", TWISTD, "--version"], check=False)


@pytest.mark.pure
def test_twistd_is_seen_however_it_is_started():
    assert starts_twistd([TWISTD, "-n", "tcpplay", "echo"])
    assert starts_twistd("twistd -n tcpplay echo")
    assert starts_twistd(["sh", "-c", "cd /tmp && twistd --pidfile= tcpplay chat"])
    assert starts_twistd([sys.executable, TWISTD.encode(), "--version"])
    assert not starts_twistd([sys.executable, "-c", "import twisted.plugins"])
    assert not starts_twistd(["tshark", "-r", "twistd.pcap"])


@pytest.mark.pure
def test_the_guard_is_idle_between_tests_and_for_the_layers_without_rules():
    idle = LayerGuard()
    idle("socket.__new__", (None, 2, 1, 0))  # no test running
    idle.begin("real")
    idle("socket.__new__", (None, 2, 1, 0))
    idle("subprocess.Popen", ("redis-server", ["redis-server"], None, None))
    idle.begin("twistd")
    idle("subprocess.Popen", (TWISTD, [TWISTD, "-n", "tcpplay", "echo"], None, None))
    assert idle.end() == []
    assert REFUSED["pure"] == REFUSED["memory"] and "real" not in REFUSED


def _pytest_in(directory, tests: str) -> subprocess.CompletedProcess:
    """Run pytest over one test module in ``directory`` under this project's conftest."""
    (directory / "conftest.py").write_text(
        "from tests.conftest import (  # noqa: F401\n"
        "    _layer_rules, pytest_collection_modifyitems, pytest_runtest_call, twistd)\n"
    )
    (directory / "test_sample.py").write_text(tests)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-W", "ignore::pytest.PytestUnknownMarkWarning", str(directory)],
        cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.real
def test_a_test_without_a_layer_marker_stops_the_run(tmp_path):
    out = _pytest_in(tmp_path, "import pytest\n\n\n@pytest.mark.pure\ndef test_marked():\n    pass\n\n\n"
                               "def test_unmarked():\n    pass\n")
    assert out.returncode == pytest.ExitCode.USAGE_ERROR, out.stdout + out.stderr
    assert "1 test(s) carry no layer marker" in out.stderr
    assert "test_sample.py::test_unmarked" in out.stderr
    assert "test_marked" not in out.stderr


@pytest.mark.real
def test_a_mislabelled_test_fails_even_when_the_refusal_is_swallowed(tmp_path):
    out = _pytest_in(tmp_path, '''
import socket

import pytest


@pytest.mark.pure
def test_swallows_the_refusal():
    try:
        socket.socket()
    except Exception:
        pass


@pytest.mark.memory
def test_uses_the_twistd_fixture(twistd):
    pass


@pytest.mark.twistd
def test_may_do_anything():
    socket.socket().close()
''')
    text = out.stdout + out.stderr
    assert out.returncode == pytest.ExitCode.TESTS_FAILED, text
    assert "1 failed, 1 passed, 1 error" in text
    assert "a 'pure' test uses a socket (socket.__new__)" in text
    assert "a 'memory' test uses the twistd fixture, which is 'twistd'" in text
