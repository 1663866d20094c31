"""``ListeningService`` on the real reactor: a close that fails is said in the log, and the stop
goes on (it was an unhandled failure, lost at shutdown); a UNIX socket in a directory that does
not exist says so."""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from twisted.internet import protocol
from twisted.logger import formatEvent

from playground.common.listening import ListeningService

pytestmark = pytest.mark.real


@pytest_twisted.inlineCallbacks
def test_a_close_that_fails_is_logged_and_the_stop_goes_on(tmp_path, logged):
    from twisted.internet import reactor

    path = tmp_path / "s.sock"
    listening = ListeningService("echo", f"unix:{path}", protocol.Factory(), reactor=reactor)
    listening.privilegedStartService()
    listening.startService()
    os.unlink(path)  # removed by someone else: Twisted's close raises removing it again
    yield listening.stopService()
    text = [formatEvent(e) for e in logged]
    assert any("echo: closing unix:" in t and "failed" in t for t in text), text
    assert not any("echo stopped listening" in t for t in text)


def test_a_unix_socket_in_a_missing_directory_says_so(tmp_path):
    """Twisted's own message named the lock's symlink and a pid: ``[Errno 2] No such file or
    directory: '13763' -> b'/x/s.sock.lock'``."""
    from twisted.internet import reactor

    missing = tmp_path / "gone"
    listening = ListeningService("proxy", f"unix:{missing / 's.sock'}", protocol.Factory(),
                                 reactor=reactor)
    with pytest.raises(SystemExit) as e:
        listening.privilegedStartService()
    assert str(e.value) == (f"tcpplay proxy: cannot listen on --listen unix:{missing / 's.sock'}: "
                            f"no such directory: {missing}")
