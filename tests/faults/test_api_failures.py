"""toxiproxy's API when the registry fails in a way it did not foresee: the request still gets
an answer (500, the log says why), never silence. In memory: the site over a StringTransport."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer
from twisted.internet.testing import StringTransport

from playground.faults.api import make_site
from playground.faults.registry import Registry

pytestmark = pytest.mark.memory


class _BrokenRegistry(Registry):
    """A registry whose reset fails with an error no route expects."""

    def reset(self):
        return defer.fail(RuntimeError("the disk is on fire"))


def _answer(registry: Registry, request: bytes) -> tuple[int, dict]:
    transport = StringTransport()
    channel = make_site(registry).buildProtocol(None)
    channel.makeConnection(transport)
    channel.dataReceived(request)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head, "no answer at all"
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_an_unforeseen_failure_is_a_500_not_a_hang():
    status, answer = _answer(_BrokenRegistry(),
                             b"POST /reset HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    assert (status, answer["status"]) == (500, 500)
    assert "internal error" in answer["error"]
    assert "on fire" not in answer["error"]  # the details go to the log, not the client
