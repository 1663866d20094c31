"""``ListeningService`` on the real reactor: a close that fails is said in the log, and the stop
goes on (it was an unhandled failure, lost at shutdown)."""

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
