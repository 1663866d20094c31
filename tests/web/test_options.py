"""The web view's options: --web and --web-token are checked as --api and --api-token are
(``check_token`` for both)."""

from __future__ import annotations

import pytest
from twisted.python import usage

from playground.web.options import check_options

pytestmark = pytest.mark.pure


def test_web_options_token_only_beyond_loopback():
    opts = {"web": "8478", "web-token": None}
    check_options(opts)
    assert opts == {"web": "tcp:8478:interface=127.0.0.1:backlog=1024", "web-token": None}
    opts = {"web": "0.0.0.0:8478", "web-token": None}
    check_options(opts)
    assert len(opts["web-token"]) >= 20
    opts = {"web": None, "web-token": None, "web-connections": "3", "web-memory": "0"}
    check_options(opts)
    assert opts == {"web": None, "web-token": None, "web-connections": 3, "web-memory": 0}


@pytest.mark.parametrize("opts, message", [
    ({"web": None, "web-token": "abcdefgh12"}, "--web-token needs --web"),
    ({"web": "", "web-token": "abcdefgh12"}, "--web-token needs --web"),
    ({"web": "8478", "web-token": "short"}, "--web-token: at least 8 printable characters"),
    ({"web": "8478", "web-token": "has a space"}, "--web-token: at least 8 printable"),
    ({"web": "nowhere", "web-token": None}, "--web: cannot read 'nowhere'"),
    ({"web": "8478", "web-token": None, "web-connections": "0"}, "--web-connections: must be"),
    # a bound on memory has a bound itself: 10**17 MiB was taken, keeping every byte
    ({"web": "8478", "web-token": None, "web-memory": "65537"},
     "--web-memory: must be at most 65536 MiB .64 GiB., got '65537'"),
    ({"web": "8478", "web-token": None, "web-memory": "9" * 30}, "--web-memory: must be at most"),
    ({"web": "8478", "web-token": None, "web-memory": "+64"},
     "--web-memory: expected a whole number .digits 0-9 only., got '.64'"),
])
def test_web_options_errors_name_the_flag(opts, message):
    with pytest.raises(usage.UsageError, match=message.replace("'", ".")):
        check_options(opts)
